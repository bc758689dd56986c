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
import { memoryRpcPair } from '../fixtures/connections.js';
import { deferred, rejectsWithStatus, sleep, trackTimers, until, within } from '../helpers.js';

const CLEANUP_MS = 3000;

const Edges = defineService('test.edges.v1', {
  echo: unary<string, string>(),
  count: serverStream<number, number>(),
  chat: bidi<string, string>(),
  sum: clientStream<number, number>(),
  put: upload<string, number>(),
});

/** Names of the handlers that ran, in order. */
const handled: string[] = [];

const edgesImpl = serve(Edges, {
  echo: (text) => {
    handled.push('echo');
    return text;
  },
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
function pair(t: TestContext, callerOptions: RpcSessionOptions, calleeOptions: RpcSessionOptions = {}): Promise<{ caller: RpcSession; callee: RpcSession }> {
  return memoryRpcPair(t, callerOptions, { services: [edgesImpl], ...calleeOptions });
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

/**
 * An interceptor that holds every call until `release()` (as one awaiting a token refresh would), then passes it on;
 * it records the call's signal and what `next` did.
 */
function holding(): { interceptor: ClientInterceptor; release(): void; signals: AbortSignal[]; nextOutcomes: Promise<unknown>[] } {
  const gate = deferred();
  const signals: AbortSignal[] = [];
  const nextOutcomes: Promise<unknown>[] = [];
  const interceptor: ClientInterceptor = (next) => async (call) => {
    if (call.signal !== undefined) signals.push(call.signal);
    await gate.promise;
    const outcome = next(call);
    nextOutcomes.push(outcome.then(() => 'resolved', (error: unknown) => error));
    return outcome;
  };
  return { interceptor, release: () => gate.resolve(), signals, nextOutcomes };
}

/** Resolves with how long `promise` took to reject, and its error (it must reject, within 2 s). */
async function timedRejection(promise: Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const start = performance.now();
  try {
    await within(promise, 2000, 'the call to fail');
  } catch (error) {
    return { ms: performance.now() - start, error };
  }
  assert.fail('resolved');
}

void describe("the caller's deadline and signal while an interceptor awaits", () => {
  void test('a unary call with timeoutMs 100 fails DEADLINE_EXCEEDED at 100 ms (it waited out the interceptor), call.signal aborts then, and the call is never sent once the interceptor goes on', async (t) => {
    const hold = holding();
    t.after(hold.release);
    const { caller, callee } = await pair(t, { clientInterceptors: [hold.interceptor] });
    handled.length = 0;
    const { ms, error } = await timedRejection(caller.client(Edges).echo('x', { timeoutMs: 100 }));
    assert.ok(error instanceof RpcError && error.code === Status.DEADLINE_EXCEEDED, String(error));
    assert.ok(ms >= 90 && ms < 600, `on time (${ms.toFixed(0)} ms)`);
    const signal = hold.signals[0]!;
    assert.equal(signal.aborted, true, 'call.signal aborted at the deadline');
    assert.ok(signal.reason instanceof RpcError && signal.reason.code === Status.DEADLINE_EXCEEDED);

    hold.release(); // the interceptor goes on, late
    await until(() => hold.nextOutcomes.length > 0, 1000, 'the interceptor to call next');
    const nextOutcome = await hold.nextOutcomes[0];
    assert.ok(nextOutcome instanceof RpcError && nextOutcome.code === Status.DEADLINE_EXCEEDED, `next rejects: ${String(nextOutcome)}`);
    await sleep(20);
    assert.deepEqual(handled, [], 'no handler ran');
    assert.equal(callee.streamCount + caller.streamCount, 0, 'no stream was opened');
  });

  void test("the caller's signal fails the call CANCELLED at once while the interceptor awaits, and call.signal aborts with it", async (t) => {
    const hold = holding();
    t.after(hold.release);
    const { caller } = await pair(t, { clientInterceptors: [hold.interceptor] });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const { ms, error } = await timedRejection(caller.client(Edges).echo('x', { signal: controller.signal }));
    assert.ok(error instanceof RpcError && error.code === Status.CANCELLED, String(error));
    assert.ok(ms >= 90 && ms < 600, `on time (${ms.toFixed(0)} ms)`);
    assert.equal(hold.signals[0]!.aborted, true);
    assert.notEqual(hold.signals[0], controller.signal, "call.signal is the call's own, tied to the caller's");
    hold.release();
  });

  void test('streaming kinds fail their first read on time, and a clientStream its promise, its requests closed', async (t) => {
    const hold = holding();
    t.after(hold.release);
    const { caller, callee } = await pair(t, { clientInterceptors: [hold.interceptor] });
    const client = caller.client(Edges);
    const stream = timedRejection(readAll(client.count(3, { timeoutMs: 100 })));
    const chat = timedRejection(readAll(client.chat(['a'], { timeoutMs: 100 })));
    const requests = new Readable({ objectMode: true, read() {} });
    const sum = timedRejection(client.sum(requests, { timeoutMs: 100 }));
    for (const [what, outcome] of [['serverStream', stream], ['bidi', chat], ['clientStream', sum]] as const) {
      const { ms, error } = await outcome;
      assert.ok(error instanceof RpcError && error.code === Status.DEADLINE_EXCEEDED, `${what}: ${String(error)}`);
      assert.ok(ms < 600, `${what} on time (${ms.toFixed(0)} ms)`);
    }
    assert.equal(requests.destroyed, true, 'the clientStream requests are closed');
    hold.release();
    await until(() => hold.nextOutcomes.length === 3, 1000, 'the interceptor to go on');
    for (const outcome of await Promise.all(hold.nextOutcomes)) assert.ok(outcome instanceof RpcError && outcome.code === Status.DEADLINE_EXCEEDED, String(outcome));
    await sleep(20);
    assert.equal(callee.streamCount + caller.streamCount, 0, 'nothing was sent');
  });

  void test('a stream an interceptor hands back after the deadline is cancelled', async (t) => {
    let cancelled = false;
    const late: ClientInterceptor = () => async () => {
      await sleep(200);
      async function* standIn(): AsyncGenerator<number> {
        try {
          yield 1;
        } finally {
          cancelled = true;
        }
      }
      const responses = standIn();
      await responses.next(); // started: its finally runs only if it is returned
      return { kind: 'serverStream', responses };
    };
    const { caller } = await pair(t, { clientInterceptors: [late] });
    const { error } = await timedRejection(readAll(caller.client(Edges).count(1, { timeoutMs: 50 })));
    assert.ok(error instanceof RpcError && error.code === Status.DEADLINE_EXCEEDED, String(error));
    await until(() => cancelled, 1000, 'the late stream to be cancelled');
  });

  void test('after the chain: call.signal still aborts at the deadline while the stream is read, the reader gets DEADLINE_EXCEEDED; the caller\'s signal still cancels', async (t) => {
    const signals: AbortSignal[] = [];
    const record: ClientInterceptor = (next) => (call) => {
      signals.push(call.signal!);
      return next(call);
    };
    const { caller, callee } = await pair(t, { clientInterceptors: [record] });
    const client = caller.client(Edges);
    const chat = client.chat({ timeoutMs: 150 });
    await chat.send('a');
    assert.deepEqual((await chat.next()).value, 'a');
    const { ms, error } = await timedRejection(chat.next());
    assert.ok(error instanceof RpcError && error.code === Status.DEADLINE_EXCEEDED, String(error));
    assert.ok(ms < 600, `on time (${ms.toFixed(0)} ms)`);
    assert.equal(signals[0]!.aborted, true);

    const controller = new AbortController();
    const second = client.chat({ signal: controller.signal });
    await second.send('b');
    assert.deepEqual((await second.next()).value, 'b');
    controller.abort();
    await rejectsWithStatus(second.next(), Status.CANCELLED, 'the caller aborted mid-call');
    await until(() => callee.streamCount === 0, CLEANUP_MS, 'both calls over on the peer');
  });

  void test('a reader that stops before the chain returned (no signal, no deadline) is done at once, and a late next sends nothing', async (t) => {
    const hold = holding();
    t.after(hold.release);
    const { caller, callee } = await pair(t, { clientInterceptors: [hold.interceptor] });
    const client = caller.client(Edges);
    const stream = client.count(3);
    const chat = client.chat(['a']);
    await sleep(10);
    assert.deepEqual(await within(stream.return(), 1000, 'the stream to stop'), { done: true, value: undefined });
    assert.deepEqual(await within(chat.return(), 1000, 'the bidi call to stop'), { done: true, value: undefined });
    hold.release();
    await until(() => hold.nextOutcomes.length === 2, 1000, 'the interceptor to go on');
    for (const outcome of await Promise.all(hold.nextOutcomes)) assert.ok(outcome instanceof RpcError && outcome.code === Status.CANCELLED, `next is refused: ${String(outcome)}`);
    await sleep(20);
    assert.equal(callee.streamCount + caller.streamCount, 0, 'nothing was sent');
  });

  void test('leaves no timer behind, whatever becomes of the call', async (t) => {
    const answer: ClientInterceptor = (next) => (call) => (call.metadata['x-answer'] === 'self' ? Promise.resolve({ kind: 'unary', response: 'self' }) : next(call));
    const refuse: ClientInterceptor = (next) => (call) => {
      if (call.metadata['x-refuse'] === 'yes') throw new RpcError(Status.PERMISSION_DENIED, 'no');
      return next(call);
    };
    const { caller } = await pair(t, { clientInterceptors: [refuse, answer] });
    const client = caller.client(Edges);
    const options = { timeoutMs: 60_000 };
    const timers = trackTimers();
    try {
      assert.equal(await client.echo('x', options), 'x');
      assert.equal(await client.echo('x', { ...options, metadata: { 'x-answer': 'self' } }), 'self');
      await rejectsWithStatus(client.echo('x', { ...options, metadata: { 'x-refuse': 'yes' } }), Status.PERMISSION_DENIED);
      assert.deepEqual(await readAll(client.count(2, options)), [0, 1]);
      for await (const n of client.count(5, options)) {
        assert.equal(n, 0);
        break;
      }
      assert.deepEqual(await readAll(client.chat(['a'], options)), ['a']);
      assert.equal(await client.sum([1, 2], options), 3);
      await readError(client.count(1, { ...options, metadata: { 'x-refuse': 'yes' } }));
      await sleep(20);
      assert.deepEqual(timers.live().filter((timer) => timer.startsWith('60000 ms')), [], 'no deadline timer left');
    } finally {
      timers.stop();
    }
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
