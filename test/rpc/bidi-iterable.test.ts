/**
 * A bidi call driven by an iterable of requests (connect-es style): `client.chat(requests, options?)` returns the same
 * BidiCall, read with `for await`, whose sending side the iterable drives: it ends when the iterable ends, an iterable
 * that throws fails the call (both sides learn why), and `send()` on such a call rejects. `client.chat(options?)`
 * keeps working, and anything else a JavaScript caller could pass throws a TypeError at once (it used to start a call
 * that waited forever for requests nobody sent). The same over interceptors, a channel and a mesh peer.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  bidi,
  defineService,
  serve,
  Status,
  type BidiCall,
  type ClientInterceptor,
  type Client,
  type MessageStream,
  type RpcSessionOptions,
} from '../../src/index.js';
import { openChannel, startMesh, startServer } from '../fixtures/connections.js';
import { assertStatus, deferred, openConn, rejectsWithStatus, socketPath, testConnTypes, within, type Deferred } from '../helpers.js';

const Chat = defineService('test.BidiIterable', {
  shout: bidi<string, string>(),
});

interface Seen {
  requests: string[];
  /** How the handler's request iterator ended: 'end' for a clean end, else the error. */
  ended: Deferred<unknown>;
  metadata: Array<Record<string, unknown>>;
  /** The reason of the last call's ctx.signal, once it aborted. */
  aborted: Deferred<unknown>;
}

/** A handler that answers each request with it in upper case, and records what it saw. */
function chatService(seen: Seen): ReturnType<typeof serve> {
  return serve(Chat, {
    shout: async function* (requests: MessageStream<string>, ctx) {
      seen.metadata.push({ ...ctx.metadata });
      const aborted = seen.aborted;
      ctx.signal.addEventListener('abort', () => aborted.resolve(ctx.signal.reason), { once: true });
      try {
        for await (const text of requests) {
          seen.requests.push(text);
          yield text.toUpperCase();
        }
        seen.ended.resolve('end');
      } catch (error) {
        seen.ended.resolve(error);
        throw error;
      }
    },
  });
}

function newSeen(): Seen {
  return { requests: [], ended: deferred<unknown>(), metadata: [], aborted: deferred<unknown>() };
}

async function readAll<T>(stream: AsyncIterable<T>, what: string): Promise<T[]> {
  const items: T[] = [];
  await within(
    (async () => {
      for await (const item of stream) items.push(item);
    })(),
    2000,
    what,
  );
  return items;
}

/** A conversation: each request is yielded only once the reply to the one before has arrived. */
async function* inTurn(words: readonly string[], replies: string[], replied: () => Promise<void>): AsyncGenerator<string> {
  for (const word of words) {
    yield word;
    const before = replies.length;
    while (replies.length === before) await replied();
  }
}

/** The checks every caller kind (session, interceptors, channel, mesh peer) must pass. */
async function driveAndCheck(client: Client<typeof Chat.methods>, seen: Seen, what: string): Promise<void> {
  // an array, with options after it
  const fromArray = client.shout(['a', 'b', 'c'], { metadata: { 'x-from': 'array' }, timeoutMs: 5000 });
  assert.deepEqual(await readAll(fromArray, `${what}: replies to an array`), ['A', 'B', 'C']);
  assert.equal(await within(seen.ended.promise, 1000, `${what}: the handler's requests ended`), 'end');
  assert.deepEqual(seen.requests, ['a', 'b', 'c']);
  assert.equal(seen.metadata.at(-1)?.['x-from'], 'array');

  // an async generator that waits for each reply before the next request: the call is really two-way
  seen.requests.length = 0;
  seen.ended = deferred<unknown>();
  const replies: string[] = [];
  let wake: Deferred<void> = deferred<void>();
  const conversation = client.shout(
    inTurn(['one', 'two', 'three'], replies, () => wake.promise),
  );
  await within(
    (async () => {
      for await (const reply of conversation) {
        replies.push(reply);
        const w = wake;
        wake = deferred<void>();
        w.resolve();
      }
    })(),
    2000,
    `${what}: the conversation`,
  );
  assert.deepEqual(replies, ['ONE', 'TWO', 'THREE']);
  assert.equal(await within(seen.ended.promise, 1000, `${what}: the conversation's requests ended`), 'end');

  // chat(options?) still sends with send() and end()
  seen.ended = deferred<unknown>();
  const byHand = client.shout({ timeoutMs: 5000 });
  await byHand.send('hand');
  byHand.end();
  assert.deepEqual(await readAll(byHand, `${what}: replies to send()`), ['HAND']);
}

function assertArgumentErrors(client: Client<typeof Chat.methods>, what: string): void {
  // what a JavaScript caller could pass: each must throw at once, never start a call that waits for requests
  const loose = client.shout as unknown as (...args: unknown[]) => BidiCall<string, string>;
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['a request object where the options belong', () => loose({ text: 'hi' }), /"text" is not a call option/],
    ['one string request', () => loose('hello'), /not one string/],
    ['one Uint8Array', () => loose(new Uint8Array(3)), /not one Uint8Array/],
    ['a promise of requests', () => loose(Promise.resolve(['a'])), /an instance of Promise/],
    ['a number', () => loose(42), /got number/],
    ['options, then something else', () => loose({ timeoutMs: 10 }, ['a']), /not an iterable or async iterable of requests/],
    ['requests, then a request object as options', () => loose(['a'], { text: 'hi' }), /"text" is not a call option/],
  ];
  for (const [name, call, message] of cases) {
    assert.throws(call, (error: unknown) => error instanceof TypeError && message.test(error.message), `${what}: ${name} throws a TypeError`);
  }
}

void describe('bidi driven by an iterable of requests', () => {
  testConnTypes(
    'chat(requests, options?) sends what the iterable yields and ends with it; chat(options?) still works; bad arguments throw a TypeError',
    async (env) => {
      const seen = newSeen();
      const { caller } = await env.open({ services: [chatService(seen)] });
      const client = caller.client(Chat);
      await driveAndCheck(client, seen, 'session');
      assertArgumentErrors(client, 'session');
    },
    { kinds: ['memory', 'tcp'] },
  );

  testConnTypes(
    "send() on a call its iterable drives rejects FAILED_PRECONDITION and end() does nothing; an iterable that throws fails the call (UNKNOWN, the source's message) on both sides",
    async (env) => {
      const seen = newSeen();
      const { caller } = await env.open({ services: [chatService(seen)] });
      const client = caller.client(Chat);

      const gate = deferred<void>();
      const driven = client.shout(
        (async function* () {
          yield 'first';
          await gate.promise;
          yield 'second';
        })(),
      );
      const sent = await rejectsWithStatus(driven.send('by hand'), Status.FAILED_PRECONDITION, 'send() on a driven call');
      assert.match(sent.message, /iterable of requests/);
      driven.end(); // no effect: the iterable still decides when the caller's side ends
      assert.deepEqual((await within(driven.next(), 1000, 'first reply')).value, 'FIRST');
      gate.resolve();
      assert.deepEqual(await readAll(driven, 'the rest'), ['SECOND']);
      assert.deepEqual(seen.requests, ['first', 'second']);

      seen.aborted = deferred<unknown>();
      const failing = client.shout(
        (async function* () {
          yield 'ok';
          throw new Error('the disk went away');
        })(),
      );
      let error: unknown;
      try {
        await readAll(failing, 'a failing iterable');
      } catch (e) {
        error = e;
      }
      assertStatus(error, Status.UNKNOWN, 'the reader of a call whose iterable threw');
      assert.match(error.message, /the caller's source failed: the disk went away/);
      const reason = await within(seen.aborted.promise, 1000, "the handler's signal");
      assertStatus(reason, Status.UNKNOWN, "the handler's ctx.signal");
      assert.match(reason.message, /the disk went away/);
    },
    { kinds: ['memory'] },
  );

  void test('through client interceptors: the interceptor sees call.requests and may wrap them; the same TypeErrors', { timeout: 10_000 }, async (t) => {
    const seen = newSeen();
    const wrapped: string[] = [];
    const tagging: ClientInterceptor = (next) => (call) => {
      if (call.kind !== 'bidi' || call.requests === undefined) return next(call);
      const original = call.requests;
      async function* tagged(): AsyncGenerator<unknown> {
        for await (const request of original) {
          wrapped.push(String(request));
          yield request;
        }
      }
      return next({ ...call, requests: tagged() });
    };
    const callerOptions: RpcSessionOptions = { clientInterceptors: [tagging] };
    const { caller } = await openConn(t, 'memory', false, { services: [chatService(seen)], caller: callerOptions });
    const client = caller.client(Chat);
    await driveAndCheck(client, seen, 'interceptors');
    assert.deepEqual(wrapped, ['a', 'b', 'c', 'one', 'two', 'three'], 'the interceptor saw every request of the driven calls, none of send()');
    assertArgumentErrors(client, 'interceptors');
  });

  void test('over a channel and a mesh peer, also when the call waits for the connection (waitForReady)', { timeout: 15_000 }, async (t) => {
    const seen = newSeen();
    const { server } = await startServer(t, { services: [chatService(seen)] });
    const ch = openChannel(t, server.url);
    // started before the channel is connected: the call waits for it, then its iterable is sent
    const early = ch.client(Chat).shout(['early'], { waitForReady: true, timeoutMs: 3000 });
    assert.deepEqual(await readAll(early, 'channel: a call that waited'), ['EARLY']);
    seen.requests.length = 0;
    seen.ended = deferred<unknown>();
    await driveAndCheck(ch.client(Chat), seen, 'channel');
    assertArgumentErrors(ch.client(Chat), 'channel');

    const urls = { a: `unix://${socketPath()}`, b: `unix://${socketPath()}` };
    const seenByB = newSeen();
    const a = await startMesh(t, { name: 'a', listen: urls.a, peers: { b: urls.b }, fallbackDialAfterMs: 100 });
    await startMesh(t, { name: 'b', listen: urls.b, peers: { a: urls.a }, services: [chatService(seenByB)], fallbackDialAfterMs: 100 });
    const toB = a.peer('b').client(Chat);
    const waited = toB.shout(['mesh'], { waitForReady: true, timeoutMs: 3000 });
    assert.deepEqual(await readAll(waited, 'mesh: a call that waited'), ['MESH']);
    seenByB.requests.length = 0;
    seenByB.ended = deferred<unknown>();
    await driveAndCheck(toB, seenByB, 'mesh peer');
    assertArgumentErrors(toB, 'mesh peer');
  });

  void test('types: both overloads are typed with the request type; other arguments do not compile', () => {
    const typed = (client: Client<typeof Chat.methods>): void => {
      const a: BidiCall<string, string> = client.shout();
      const b: BidiCall<string, string> = client.shout({ timeoutMs: 10 });
      const c: BidiCall<string, string> = client.shout(['x'], { timeoutMs: 10 });
      const d: BidiCall<string, string> = client.shout((async function* () {
        yield 'y';
      })());
      // @ts-expect-error -- requests of the wrong type
      client.shout([1, 2]);
      // @ts-expect-error -- one request is not an iterable of requests
      client.shout({ text: 'hi' });
      void [a, b, c, d];
    };
    void typed;
  });
});
