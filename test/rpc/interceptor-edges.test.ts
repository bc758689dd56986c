/**
 * The edges of the client interceptor chain: what an interceptor's bad replacement stream does to the caller (an
 * RpcError, never a crash), a result of the wrong kind (INTERNAL, and the real call cancelled), what is closed when
 * the chain never reaches the Caller, and the caller's deadline and signal while an interceptor awaits.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, test, type TestContext } from 'node:test';

import {
  bidi,
  clientStream,
  createMemoryPair,
  createSession,
  defineService,
  RpcError,
  serve,
  serverStream,
  Status,
  unary,
  upload,
  type ClientInterceptor,
  type RpcSession,
  type RpcSessionOptions,
  type ServerInterceptor,
} from '../../src/index.js';
import { DeferredBidi, DeferredStream } from '../../src/rpc/client/deferred.js';
import type { MessageStream } from '../../src/rpc/inbox.js';
import type { BidiCall } from '../../src/rpc/client/bidi-call.js';
import { rejectsWithStatus, sleep, until, within } from '../helpers.js';

const CLEANUP_MS = 3000;

const Edges = defineService('test.edges.v1', {
  echo: unary<string, string>(),
  count: serverStream<number, number>(),
  chat: bidi<string, string>(),
  sum: clientStream<number, number>(),
  put: upload<string, number>(),
});

const edgesImpl = serve(Edges, {
  echo: (text) => text,
  count: async function* (n) {
    for (let i = 0; i < n; i++) yield i;
  },
  chat: async function* (requests) {
    for await (const text of requests) yield text;
  },
  sum: async (requests) => {
    let total = 0;
    for await (const n of requests) total += n;
    return total;
  },
  put: async (_name, body) => {
    let bytes = 0;
    for await (const chunk of body) bytes += chunk.length;
    return bytes;
  },
});

/** Two sessions over an in-memory pair: `caller` calls `callee`, which serves Edges. */
async function pair(t: TestContext, callerOptions: RpcSessionOptions, calleeOptions: RpcSessionOptions = {}): Promise<{ caller: RpcSession; callee: RpcSession }> {
  const [a, b] = createMemoryPair();
  const caller = createSession(a, 'dialer', callerOptions);
  const callee = createSession(b, 'acceptor', { services: [edgesImpl], ...calleeOptions });
  t.after(async () => {
    caller.destroy();
    callee.destroy();
    await within(Promise.all([caller.closed, callee.closed]), CLEANUP_MS, 'sessions to close');
  });
  await within(Promise.all([caller.ready, callee.ready]), CLEANUP_MS, 'handshake');
  return { caller, callee };
}

/** Collects the process's unhandled rejections while the test runs (none may escape a call). */
function unhandledRejections(t: TestContext): unknown[] {
  const seen: unknown[] = [];
  const record = (reason: unknown): void => void seen.push(reason);
  process.on('unhandledRejection', record);
  t.after(() => void process.off('unhandledRejection', record));
  return seen;
}

async function readAll<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of source) out.push(item);
  return out;
}

/** The error reading `source` to its end rejects with. */
async function readError(source: AsyncIterable<unknown>): Promise<unknown> {
  try {
    await readAll(source);
  } catch (error) {
    return error;
  }
  assert.fail('the stream ended without an error');
}

void describe("a client interceptor's replacement stream", () => {
  void test('whose [Symbol.asyncIterator]() throws fails the reader with an RpcError, and no rejection goes unhandled (the bug crashed the process)', async (t) => {
    const unhandled = unhandledRejections(t);
    const bad: ClientInterceptor = (next) => async (call) => {
      await next(call);
      const responses = {
        [Symbol.asyncIterator]() {
          throw new Error('iterator factory threw');
        },
      };
      return { kind: 'serverStream', responses: responses as AsyncIterable<unknown> };
    };
    const { caller } = await pair(t, { clientInterceptors: [bad] });
    const error = await readError(caller.client(Edges).count(3));
    assert.ok(error instanceof RpcError, `an RpcError, got ${String(error)}`);
    assert.equal(error.code, Status.UNKNOWN);
    assert.equal(error.rawMessage, 'iterator factory threw');
    await sleep(20);
    assert.deepEqual(unhandled, []);
  });

  void test('that throws while read (an async generator) fails the reader with an RpcError made by RpcError.from', async (t) => {
    const throwing: ClientInterceptor = (next) => async (call) => {
      const result = await next(call);
      if (result.kind !== 'serverStream') return result;
      const responses = result.responses;
      async function* failing(): AsyncGenerator<unknown> {
        for await (const item of responses) {
          yield item;
          throw new TypeError('the wrapper broke');
        }
      }
      return { ...result, responses: failing() };
    };
    const { caller } = await pair(t, { clientInterceptors: [throwing] });
    const seen: number[] = [];
    const error = await (async () => {
      try {
        for await (const n of caller.client(Edges).count(3)) seen.push(n);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.deepEqual(seen, [0]);
    assert.ok(error instanceof RpcError, `an RpcError, got ${String(error)}`);
    assert.equal(error.code, Status.UNKNOWN);
    assert.equal(error.rawMessage, 'the wrapper broke');
  });

  void test('a replacement bidi handle whose reads and sends throw fails them with RpcErrors', async (t) => {
    const fake: BidiCall<unknown, unknown> = {
      [Symbol.asyncIterator]() {
        return this;
      },
      next: () => Promise.reject(new Error('read broke')),
      return: () => Promise.resolve({ done: true, value: undefined }),
      send: () => {
        throw new Error('send broke');
      },
      end: () => undefined,
    };
    const replace: ClientInterceptor = () => async () => ({ kind: 'bidi', call: fake });
    const { caller } = await pair(t, { clientInterceptors: [replace] });
    const call = caller.client(Edges).chat();
    const sendError = await call.send('a').then(
      () => assert.fail('send resolved'),
      (e: unknown) => e,
    );
    assert.ok(sendError instanceof RpcError && sendError.rawMessage === 'send broke', `send: ${String(sendError)}`);
    const readErr = await readError(call);
    assert.ok(readErr instanceof RpcError && readErr.rawMessage === 'read broke', `read: ${String(readErr)}`);
  });
});

void describe('a result of the wrong kind', () => {
  void test('after next() on a serverStream or bidi call fails the call INTERNAL and cancels the real call on both sides (it stayed open, holding the handler\'s slot)', async (t) => {
    const wrong: ClientInterceptor = (next) => async (call) => {
      await next(call);
      return { kind: 'unary', response: 1 };
    };
    const { caller, callee } = await pair(t, { clientInterceptors: [wrong] });
    const client = caller.client(Edges);
    const error = await readError(client.count(1_000_000));
    assert.ok(error instanceof RpcError && error.code === Status.INTERNAL, String(error));
    assert.match(error.message, /a unary result for a serverStream call/);
    await until(() => caller.streamCount === 0 && callee.streamCount === 0, CLEANUP_MS, 'the real serverStream call to be cancelled');

    const chat = client.chat(['a', 'b']);
    const bidiError = await readError(chat);
    assert.ok(bidiError instanceof RpcError && bidiError.code === Status.INTERNAL, String(bidiError));
    await until(() => caller.streamCount === 0 && callee.streamCount === 0, CLEANUP_MS, 'the real bidi call to be cancelled');
  });

  void test('a chain that rejects after next() started a stream cancels it', async (t) => {
    const late: ClientInterceptor = (next) => async (call) => {
      await next(call);
      throw new RpcError(Status.ABORTED, 'changed my mind');
    };
    const { caller, callee } = await pair(t, { clientInterceptors: [late] });
    const error = await readError(caller.client(Edges).count(1_000_000));
    assert.ok(error instanceof RpcError && error.code === Status.ABORTED, String(error));
    await until(() => caller.streamCount === 0 && callee.streamCount === 0, CLEANUP_MS, 'the real call to be cancelled');
  });

  void test('is told by its kind, not by its fields: { kind: clientStream, response } fails a unary call INTERNAL, on either side', async (t) => {
    const clientSide: ClientInterceptor = (next) => async (call) => {
      const result = await next(call);
      return result.kind === 'unary' ? { kind: 'clientStream', response: result.response } : result;
    };
    const { caller } = await pair(t, { clientInterceptors: [clientSide] });
    const error = await rejectsWithStatus(caller.client(Edges).echo('x'), Status.INTERNAL, 'client side');
    assert.match(error.message, /a client interceptor returned a clientStream result for a unary call/);

    const serverSide: ServerInterceptor = (next) => async (call) => {
      const result = await next(call);
      return result.kind === 'unary' ? { kind: 'clientStream', response: result.response } : result;
    };
    const { caller: other } = await pair(t, {}, { serverInterceptors: [serverSide] });
    const serverError = await rejectsWithStatus(other.client(Edges).echo('x'), Status.INTERNAL, 'server side');
    assert.match(serverError.message, /a server interceptor returned a clientStream result for a unary call/);
  });
});

/** A Readable that never produces: only whether it gets closed matters. */
function idleReadable(objectMode = true): Readable {
  return new Readable({ objectMode, read() {} });
}

/** An async generator of requests that records whether its body ran to its finally block. */
function requestGenerator<T>(items: readonly T[]): AsyncGenerator<T> & { readonly finished: boolean } {
  const state = { finished: false };
  const generator = (async function* () {
    try {
      for (const item of items) yield item;
    } finally {
      state.finished = true;
    }
  })();
  return Object.defineProperty(generator, 'finished', { get: () => state.finished }) as AsyncGenerator<T> & { readonly finished: boolean };
}

/** True once `generator` is closed: a closed generator answers next() with done at once. */
async function closed(generator: AsyncGenerator<unknown>): Promise<boolean> {
  return (await generator.next()).done === true;
}

void describe('what the caller handed over is closed when the chain never reaches the Caller', () => {
  void test('an upload or clientStream an interceptor answers itself (never calling next) has its body or requests closed (they stayed open)', async (t) => {
    const answer: ClientInterceptor = () => async (call) => ({ kind: call.kind, response: 0 }) as never;
    const { caller } = await pair(t, { clientInterceptors: [answer] });
    const client = caller.client(Edges);
    const body = idleReadable(false);
    assert.equal(await client.put('f', body), 0);
    assert.equal(body.destroyed, true, 'the upload body is destroyed');
    const requests = idleReadable();
    assert.equal(await client.sum(requests), 0);
    assert.equal(requests.destroyed, true, 'the clientStream requests are destroyed');
    const generator = requestGenerator([1, 2]);
    assert.equal(await client.sum(generator), 0);
    assert.equal(await closed(generator), true, 'a generator of requests is returned');
  });

  void test('a clientStream or bidi(iterable) call refused by an interceptor closes its requests (they stayed open)', async (t) => {
    const refuse: ClientInterceptor = () => () => {
      throw new RpcError(Status.PERMISSION_DENIED, 'no');
    };
    const { caller, callee } = await pair(t, { clientInterceptors: [refuse] });
    const client = caller.client(Edges);
    const requests = idleReadable();
    await rejectsWithStatus(client.sum(requests), Status.PERMISSION_DENIED, 'clientStream');
    assert.equal(requests.destroyed, true, 'the clientStream requests are destroyed');
    const chatRequests = idleReadable();
    const error = await readError(client.chat(chatRequests));
    assert.ok(error instanceof RpcError && error.code === Status.PERMISSION_DENIED, String(error));
    assert.equal(chatRequests.destroyed, true, 'the bidi requests are destroyed');
    const generator = requestGenerator(['a']);
    await readError(client.chat(generator));
    assert.equal(await closed(generator), true, 'a generator of bidi requests is returned');
    assert.equal(callee.streamCount, 0, 'nothing was sent');
  });

  void test("a bidi call an interceptor answers with its own handle may read the caller's requests while the caller reads it; they are let go of when the caller is done", async (t) => {
    /** A stand-in for the peer: answers each request in upper case, reading the caller's requests only as it is read. */
    const local: ClientInterceptor = () => async (call) => {
      if (call.kind !== 'bidi' || call.requests === undefined) throw new RpcError(Status.UNIMPLEMENTED, 'requests only');
      const requests = call.requests as AsyncIterable<string>;
      async function* answers(): AsyncGenerator<string> {
        for await (const text of requests) yield text.toUpperCase();
      }
      const responses = answers();
      const handle = Object.assign(responses, {
        send: () => Promise.reject(new RpcError(Status.FAILED_PRECONDITION, 'driven by an iterable')),
        end: () => undefined,
      });
      return { kind: 'bidi', call: handle as unknown as BidiCall<unknown, unknown> };
    };
    const { caller } = await pair(t, { clientInterceptors: [local] });
    const generator = requestGenerator(['a', 'b']);
    assert.deepEqual(await readAll(caller.client(Edges).chat(generator)), ['A', 'B'], 'the requests were read after the chain had returned');
    assert.equal(generator.finished, true);

    // a caller that stops early: the requests the stand-in had not read yet are let go of
    const rest = requestGenerator(['x', 'y', 'z']);
    for await (const answer of caller.client(Edges).chat(rest)) {
      assert.equal(answer, 'X');
      break;
    }
    assert.equal(await closed(rest), true, 'the rest of the requests are returned');
  });
});

void describe('deferred streams and bidi handles', () => {
  void test('a start that rejects fails reads (and sends) with an RpcError and leaves no rejection unhandled', async (t) => {
    const unhandled = unhandledRejections(t);
    const stream = new DeferredStream(Promise.reject(new Error('no start')) as Promise<MessageStream<unknown>>);
    const error = await readError(stream);
    assert.ok(error instanceof RpcError && error.rawMessage === 'no start', String(error));

    const handle = new DeferredBidi(Promise.reject(new Error('no start either')) as Promise<BidiCall<unknown, unknown>>);
    handle.end(); // before the start settled: must not leave a rejection behind
    await rejectsWithStatus(handle.send('x'), Status.UNKNOWN, 'send');
    const readErr = await readError(handle);
    assert.ok(readErr instanceof RpcError, String(readErr));
    await sleep(20);
    assert.deepEqual(unhandled, []);
  });
});
