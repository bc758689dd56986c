/**
 * The provided interceptors (src/rpc/interceptors/): call logging on both sides, deadline defaults (client) and caps
 * (server), per-method rate limits, exception recovery; each over unary, streams and bulk, composed with each other
 * and with the application's own in both orders (the first in a list is the outermost), and their error paths.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test, type TestContext } from 'node:test';

import {
  bidi,
  capHandlerTime,
  clientStream,
  defaultDeadlines,
  defineService,
  download,
  logClientCalls,
  logServerCalls,
  rateLimitCalls,
  recoverExceptions,
  RpcError,
  serve,
  serverStream,
  Status,
  unary,
  upload,
  type CallLogLine,
  type Client,
  type ClientInterceptor,
  type Logger,
  type RpcSessionOptions,
  type ServerInterceptor,
} from '../../src/index.js';
import { defaultPeerKey } from '../../src/rpc/interceptors/rate-limit.js';
import type { HandlerContext } from '../../src/rpc/server/context.js';
import { connectTo, memoryRpcPair, startServer } from '../fixtures/connections.js';
import { rejectsWithStatus, until, within } from '../helpers.js';

const Svc = defineService('test.provided.v1', {
  echo: unary<string, string>(),
  slow: unary<number, string>(),
  fail: unary<string, string>(),
  count: serverStream<number, number>(),
  endless: serverStream<number, number>(),
  sum: clientStream<number, number>(),
  chat: bidi<string, string>(),
  put: upload<string, number>(),
  get: download<number>(),
  getBroken: download<number>(),
});
type SvcClient = Client<(typeof Svc)['methods']>;

interface Recorded {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string | undefined;
}

/** A logger that keeps what it is given. */
function recordingLogger(): Logger & { lines: Recorded[] } {
  const lines: Recorded[] = [];
  const at = (level: Recorded['level']) => (obj: object, msg?: string) => void lines.push({ level, obj: obj as Record<string, unknown>, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function service(state: { handled: string[]; endlessClosed: boolean; slowSignal?: AbortSignal; slowDeadline?: number | undefined }) {
  return serve(Svc, {
    echo: (text) => {
      state.handled.push('echo');
      return text;
    },
    slow: async (ms, ctx) => {
      state.handled.push('slow');
      state.slowSignal = ctx.signal;
      state.slowDeadline = ctx.deadline;
      await sleep(ms, undefined, { signal: ctx.signal }).catch(() => undefined);
      return 'slept';
    },
    fail: (what) => {
      state.handled.push('fail');
      if (what === 'rpc') throw new RpcError(Status.NOT_FOUND, 'no such thing');
      throw new Error(`cannot open /var/lib/secret/${what}.db: SELECT * FROM users`);
    },
    count: async function* (n) {
      state.handled.push('count');
      for (let i = 0; i < n; i++) yield i;
      if (n === 3) throw new Error('disk /dev/sda1 failed');
    },
    endless: async function* (_n, ctx) {
      state.handled.push('endless');
      try {
        for (let i = 0; ; i++) {
          yield i;
          await sleep(5, undefined, { signal: ctx.signal }).catch(() => undefined);
          if (ctx.signal.aborted) return;
        }
      } finally {
        state.endlessClosed = true;
      }
    },
    sum: async (requests) => {
      state.handled.push('sum');
      let total = 0;
      for await (const n of requests) total += n;
      return total;
    },
    chat: async function* (requests) {
      state.handled.push('chat');
      for await (const text of requests) yield text.toUpperCase();
    },
    put: async (_name, body) => {
      state.handled.push('put');
      let bytes = 0;
      for await (const chunk of body) bytes += chunk.byteLength;
      return bytes;
    },
    get: (n) => {
      state.handled.push('get');
      return new Uint8Array(n);
    },
    getBroken: async function* (n) {
      state.handled.push('getBroken');
      yield new Uint8Array(n);
      throw new Error('read /srv/data/blob: EIO');
    },
  });
}

async function setup(t: TestContext, client: RpcSessionOptions = {}, server: RpcSessionOptions = {}) {
  const state = { handled: [] as string[], endlessClosed: false } as Parameters<typeof service>[0];
  const { caller } = await memoryRpcPair(t, { nodeName: 'caller', ...client }, { nodeName: 'callee', services: [service(state)], ...server });
  return { client: caller.client(Svc) as SvcClient, state };
}

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of source) out.push(item);
  return out;
}

const lineOf = (logger: { lines: Recorded[] }, method: string): Recorded | undefined =>
  logger.lines.find((l) => (l.obj as unknown as CallLogLine).method === `test.provided.v1/${method}`);

void describe('logging interceptors', () => {
  void test('one line per call on each side, for every kind, when the call ends: method, kind, status, duration, peer, bulk bytes', async (t) => {
    const clientLog = recordingLogger();
    const serverLog = recordingLogger();
    const { client } = await setup(t, { clientInterceptors: [logClientCalls({ logger: clientLog, peer: 'callee' })] }, { serverInterceptors: [logServerCalls({ logger: serverLog })] });
    assert.equal(await client.echo('hi'), 'hi');
    const stream = client.count(2);
    assert.deepEqual(await collect(stream), [0, 1]);
    assert.equal(await client.sum([1, 2, 3]), 6);
    const chat = client.chat();
    await chat.send('a');
    chat.end();
    assert.deepEqual(await collect(chat), ['A']);
    assert.equal(await client.put('f', [new Uint8Array(100), new Uint8Array(28)]), 128);
    assert.equal(Buffer.concat(await collect(client.get(300))).length, 300);
    await until(() => serverLog.lines.length === 6 && clientLog.lines.length === 6, 2000, 'six lines each side');
    for (const [method, kind] of [['echo', 'unary'], ['count', 'serverStream'], ['sum', 'clientStream'], ['chat', 'bidi'], ['put', 'upload'], ['get', 'download']] as const) {
      for (const [side, log] of [['client', clientLog], ['server', serverLog]] as const) {
        const line = lineOf(log, method);
        assert.ok(line, `${side} line for ${method}`);
        const obj = line.obj as unknown as CallLogLine;
        assert.equal(line.level, 'info');
        assert.equal(obj.side, side);
        assert.equal(obj.kind, kind);
        assert.equal(obj.status, 'OK');
        assert.ok(typeof obj.durationMs === 'number' && obj.durationMs >= 0);
        assert.equal(obj.peer, side === 'client' ? 'callee' : 'caller');
        assert.match(line.msg ?? '', new RegExp(`${method} OK`));
        if (method === 'put') assert.equal(obj.bytes, 128, `${side} upload bytes`);
        else if (method === 'get') assert.equal(obj.bytes, 300, `${side} download bytes`);
        else assert.equal(obj.bytes, undefined);
      }
    }
  });

  void test('a streaming call is logged when it ends, not when the handler returns: a reader that stops is CANCELLED', async (t) => {
    const clientLog = recordingLogger();
    const serverLog = recordingLogger();
    const { client, state } = await setup(t, { clientInterceptors: [logClientCalls({ logger: clientLog })] }, { serverInterceptors: [logServerCalls({ logger: serverLog })] });
    const stream = client.endless(0);
    let seen = 0;
    for await (const _ of stream) {
      if (++seen === 3) break;
      assert.equal(clientLog.lines.length, 0, 'no line while the stream runs');
      assert.equal(serverLog.lines.length, 0, 'no server line while the stream runs');
    }
    await until(() => clientLog.lines.length === 1 && serverLog.lines.length === 1, 2000, 'a line each side');
    assert.equal(clientLog.lines[0]!.obj.status, 'CANCELLED');
    assert.equal(clientLog.lines[0]!.level, 'warn');
    assert.equal(serverLog.lines[0]!.obj.status, 'CANCELLED');
    await until(() => state.endlessClosed, 2000, 'the handler stopped');
  });

  void test('errors by status class: a caller error at warn, a server fault at error; metadata only by key, never a credential', async (t) => {
    const clientLog = recordingLogger();
    const serverLog = recordingLogger();
    const keys = ['x-request-id', 'authorization', 'x-api-key', 'x-auth-token'];
    const { client } = await setup(
      t,
      { clientInterceptors: [logClientCalls({ logger: clientLog, metadataKeys: keys })] },
      { serverInterceptors: [logServerCalls({ logger: serverLog, metadataKeys: keys })] },
    );
    const metadata = { 'x-request-id': 'r-1', authorization: 'Bearer s3cr3t-token', 'x-api-key': 's3cr3t-key', 'x-auth-token': 's3cr3t-2' };
    await rejectsWithStatus(client.fail('rpc', { metadata }), Status.NOT_FOUND);
    await rejectsWithStatus(client.fail('plain', { metadata }), Status.UNKNOWN);
    await until(() => clientLog.lines.length === 2 && serverLog.lines.length === 2, 2000, 'two lines each side');
    for (const log of [clientLog, serverLog]) {
      assert.deepEqual(log.lines.map((l) => [l.level, l.obj.status]), [['warn', 'NOT_FOUND'], ['error', 'UNKNOWN']]);
      assert.deepEqual(log.lines[0]!.obj.metadata, { 'x-request-id': 'r-1' });
      assert.ok(!JSON.stringify(log.lines).includes('s3cr3t'), 'no credential in any line');
    }
  });

  void test('without a logger the interceptor is the identity: nothing logged, the call untouched', async () => {
    const next = (): Promise<never> => Promise.reject(new Error('unused'));
    assert.equal(logClientCalls()(next as never), next);
    assert.equal(logServerCalls({})(next as never), next);
    assert.throws(() => logServerCalls({ logger: { info() {} } as unknown as Logger }), TypeError);
  });
});

void describe('deadline defaults and caps', () => {
  void test('a client default by service makes a call without a deadline fail DEADLINE_EXCEEDED; a caller deadline wins; * is the fallback', async (t) => {
    const { client } = await setup(t, { clientInterceptors: [defaultDeadlines({ 'test.provided.v1/*': 60, 'test.provided.v1/echo': Infinity, '*': 10 })] });
    const started = performance.now();
    await rejectsWithStatus(client.slow(2000), Status.DEADLINE_EXCEEDED, 'slow without a deadline');
    assert.ok(performance.now() - started < 1500, 'failed at the default, not after the handler');
    assert.equal(await client.slow(100, { timeoutMs: 3000 }), 'slept', 'the caller deadline is kept');
    assert.equal(await client.echo('x'), 'x', 'Infinity: no default');
    // a stream too: the default bounds the whole call
    await assert.rejects(collect(client.endless(0)), (error: unknown) => error instanceof RpcError && error.code === Status.DEADLINE_EXCEEDED);
    assert.throws(() => defaultDeadlines({ 'bad key/': 5 }), TypeError);
    assert.throws(() => defaultDeadlines({ '*': -1 }), RangeError);
  });

  void test('a server cap ends a handler that would run longer than allowed: ctx.deadline and signal are the cap, the caller gets DEADLINE_EXCEEDED', async (t) => {
    const { client, state } = await setup(t, {}, { serverInterceptors: [capHandlerTime({ '*': 80 })] });
    const started = Date.now();
    const error = await rejectsWithStatus(client.slow(5000), Status.DEADLINE_EXCEEDED, 'slow past the cap');
    assert.match(error.message, /limit of 80 ms/);
    assert.ok(state.slowDeadline !== undefined && state.slowDeadline - started <= 1000, 'the handler saw the cap as its deadline');
    await until(() => state.slowSignal?.aborted === true, 1000, 'the handler signal aborted');
    // an earlier caller deadline passes untouched (its own DEADLINE_EXCEEDED)
    assert.equal(await client.slow(10, { timeoutMs: 60_000 }), 'slept');
    // a stream: ended at the cap, the handler's generator closed
    await assert.rejects(collect(client.endless(0)), (e: unknown) => e instanceof RpcError && e.code === Status.DEADLINE_EXCEEDED);
    await until(() => state.endlessClosed, 2000, 'the generator closed');
  });
});

void describe('rate limits', () => {
  void test('beyond the burst a call is refused RESOURCE_EXHAUSTED, before its handler runs, and the message says the limit', async (t) => {
    // rates that cannot refill while the test runs (one token per 100 s or more), however slow the machine
    const limits = { 'test.provided.v1/echo': { ratePerSec: 0.01, burst: 2 }, 'test.provided.v1/*': { ratePerSec: 0.001, burst: 1 } };
    const { client, state } = await setup(t, {}, { serverInterceptors: [rateLimitCalls({ limits })] });
    assert.equal(await client.echo('1'), '1');
    assert.equal(await client.echo('2'), '2');
    const error = await rejectsWithStatus(client.echo('3'), Status.RESOURCE_EXHAUSTED, 'third echo');
    assert.match(error.message, /rate limit of 0\.01 calls\/s \(burst 2\) for test\.provided\.v1\/echo exceeded; retry in \d+ ms/);
    const retryAfterMs = Number(error.metadata['retry-after-ms']);
    assert.ok(retryAfterMs > 90_000 && retryAfterMs <= 100_000, `retry-after-ms ${retryAfterMs}: about 1/rate`);
    assert.equal(state.handled.filter((h) => h === 'echo').length, 2, 'the refused call never reached the handler');
    // each method its own bucket; streams and bulk are refused the same way
    assert.deepEqual(await collect(client.count(1)), [0]);
    await assert.rejects(collect(client.count(1)), (e: unknown) => e instanceof RpcError && e.code === Status.RESOURCE_EXHAUSTED);
    assert.equal(await client.put('x', new Uint8Array(5)), 5);
    await rejectsWithStatus(client.put('x', new Uint8Array(5)), Status.RESOURCE_EXHAUSTED, 'second upload');
    assert.equal(state.handled.filter((h) => h === 'count').length, 1);
    assert.equal(state.handled.filter((h) => h === 'put').length, 1);
  });

  void test('a refused caller gets a token again once the bucket refills at its rate', async (t) => {
    const { client, state } = await setup(t, {}, { serverInterceptors: [rateLimitCalls({ limits: { 'test.provided.v1/echo': { ratePerSec: 5, burst: 1 } } })] });
    // calls back to back until one is refused (a token per 200 ms: the first few calls in a row take far less on
    // any machine; bounded, so a limiter that never refuses fails here)
    let refused: RpcError | undefined;
    let refusedSentAt = 0;
    for (let i = 0; i < 50 && refused === undefined; i++) {
      refusedSentAt = performance.now();
      refused = await client.echo('x').then(
        () => undefined,
        (error: unknown) => error as RpcError,
      );
    }
    assert.ok(refused instanceof RpcError && refused.code === Status.RESOURCE_EXHAUSTED, 'refused once the burst is spent');
    const retryAfterMs = Number(refused.metadata['retry-after-ms']);
    assert.ok(retryAfterMs > 0 && retryAfterMs <= 200, `retry-after-ms ${retryAfterMs}: at most 1/rate`);
    const handled = state.handled.length;
    // then admitted again: polled, bounded generously (a limiter that never refills fails here)
    let admitted = false;
    while (!admitted && performance.now() - refusedSentAt < 5000) {
      await sleep(20);
      admitted = await client.echo('y').then(
        () => true,
        () => false,
      );
    }
    assert.ok(admitted, 'a token again within 5 s at 5 calls/s');
    // and not before the hint (a lower bound, which a slow machine only makes easier to meet; 1 ms for its rounding up)
    const waitedMs = performance.now() - refusedSentAt;
    assert.ok(waitedMs >= retryAfterMs - 1, `admitted ${waitedMs.toFixed(1)} ms after the refusal, before its hint of ${retryAfterMs} ms: refilled too fast`);
    assert.equal(state.handled.length, handled + 1, 'only the admitted call reached the handler');
  });

  void test('one limiter on several connections (each with its own chains, as a channel or mesh dials them) shares its buckets: reconnecting gets no new tokens', async (t) => {
    const limiter = rateLimitCalls({ limits: { '*': { ratePerSec: 0.001, burst: 1 } } });
    const first = await setup(t, {}, { serverInterceptors: [limiter] });
    const second = await setup(t, {}, { serverInterceptors: [limiter] });
    assert.equal(await first.client.echo('1'), '1');
    await rejectsWithStatus(second.client.echo('2'), Status.RESOURCE_EXHAUSTED, 'the same method over another connection');
  });

  void test('per peer: each peer its own bucket, at most maxPeers kept (the least recently used is evicted)', async (t) => {
    const limiter = rateLimitCalls({ limits: { '*': { ratePerSec: 0.001, burst: 1 } }, perPeer: { maxPeers: 2, key: (ctx) => String(ctx.metadata['x-peer']) } });
    const { client } = await setup(t, {}, { serverInterceptors: [limiter] });
    const as = (peer: string) => ({ metadata: { 'x-peer': peer } });
    assert.equal(await client.echo('a', as('a')), 'a');
    await rejectsWithStatus(client.echo('a', as('a')), Status.RESOURCE_EXHAUSTED, 'a twice');
    assert.equal(await client.echo('b', as('b')), 'b', 'b has its own bucket');
    await rejectsWithStatus(client.echo('a', as('a')), Status.RESOURCE_EXHAUSTED, 'a still limited (kept: a, b)');
    assert.equal(await client.echo('c', as('c')), 'c'); // evicts b, the least recently used
    assert.equal(await client.echo('b', as('b')), 'b', 'b was evicted: a new, full bucket');
    assert.throws(() => rateLimitCalls({ limits: {}, perPeer: { maxPeers: 0 } }), RangeError);
    assert.throws(() => rateLimitCalls({ limits: { '*': { ratePerSec: 0 } } }), RangeError);
  });
});

void describe('rate limits per peer, by default', () => {
  void test('the default key is the address without the port, never the node name: connections from one host with different names share a bucket', async (t) => {
    const state = { handled: [] as string[], endlessClosed: false };
    const limiter = rateLimitCalls({ limits: { '*': { ratePerSec: 0.01, burst: 1 } }, perPeer: true });
    const { server } = await startServer(t, { services: [service(state)], serverInterceptors: [limiter] });
    const alice = (await connectTo(t, server.url, { nodeName: 'alice' })).client(Svc) as SvcClient;
    const bob = (await connectTo(t, server.url, { nodeName: 'bob' })).client(Svc) as SvcClient;
    assert.equal(await alice.echo('1'), '1');
    // another port, another name, the same host: the same peer
    await rejectsWithStatus(bob.echo('2'), Status.RESOURCE_EXHAUSTED, 'a new name from the same address');
    const aliceAgain = (await connectTo(t, server.url, { nodeName: 'alice' })).client(Svc) as SvcClient;
    await rejectsWithStatus(aliceAgain.echo('3'), Status.RESOURCE_EXHAUSTED, 'a reconnection from a new port');
    assert.equal(state.handled.length, 1);
  });

  void test('the default key: a verified certificate first, else the IP address of tcp, tls, ws and wss without the port, else the address', () => {
    const ctxOf = (peer: object) => ({ peer: { nodeName: 'claimed', label: '', features: 0, transport: 'tcp', ...peer } }) as unknown as HandlerContext;
    assert.equal(defaultPeerKey(ctxOf({ address: 'tls://10.0.0.7:4000', identity: { fingerprint256: 'AB:CD' } })), 'AB:CD');
    assert.equal(defaultPeerKey(ctxOf({ address: 'tcp://10.0.0.7:53122' })), '10.0.0.7');
    assert.equal(defaultPeerKey(ctxOf({ address: 'tls://[2001:db8::1]:4000' })), '2001:db8::1');
    assert.equal(defaultPeerKey(ctxOf({ address: 'tcp://[::ffff:10.0.0.7]:1' })), '10.0.0.7', 'IPv4 mapped into IPv6 is the IPv4 address');
    assert.equal(defaultPeerKey(ctxOf({ address: 'wss://[::1]:443/rpc' })), '::1');
    assert.equal(defaultPeerKey(ctxOf({ address: 'ws://10.0.0.8:80/rpc' })), '10.0.0.8');
    assert.equal(defaultPeerKey(ctxOf({ address: 'unix:///run/gw.sock' })), 'unix:///run/gw.sock');
    assert.equal(defaultPeerKey(ctxOf({ address: 'memory://a' })), 'memory://a');
  });
});

void describe('exception recovery', () => {
  void test("a handler's plain Error becomes INTERNAL with a generic message, logged with its stack; an RpcError passes unchanged", async (t) => {
    const log = recordingLogger();
    const { client } = await setup(t, {}, { serverInterceptors: [recoverExceptions({ logger: log })] });
    const error = await rejectsWithStatus(client.fail('plain'), Status.INTERNAL, 'plain error');
    assert.equal(error.rawMessage, 'internal error');
    assert.equal(log.lines.length, 1);
    assert.equal(log.lines[0]!.level, 'error');
    assert.match(String((log.lines[0]!.obj.err as Error).stack), /SELECT \* FROM users/);
    const notFound = await rejectsWithStatus(client.fail('rpc'), Status.NOT_FOUND, 'rpc error');
    assert.equal(notFound.rawMessage, 'no such thing');
    assert.equal(log.lines.length, 1, 'an RpcError is not logged as a crash');
  });

  void test('a stream or a download that fails while it is pumped is recovered too', async (t) => {
    const log = recordingLogger();
    const { client } = await setup(t, {}, { serverInterceptors: [recoverExceptions({ logger: log })] });
    const failure = await collect(client.count(3)).catch((e: unknown) => e);
    assert.ok(failure instanceof RpcError && failure.code === Status.INTERNAL, String(failure));
    assert.ok(!failure.message.includes('/dev/sda1'));
    const bodyFailure = await collect(client.getBroken(10)).catch((e: unknown) => e);
    assert.ok(bodyFailure instanceof RpcError && bodyFailure.code === Status.INTERNAL, String(bodyFailure));
    assert.ok(!bodyFailure.message.includes('/srv/data'));
    assert.equal(log.lines.length, 2);
  });
});

void describe('composition and order', () => {
  void test('server: the first is the outermost: logging outside recovery logs INTERNAL, inside it the raw failure', async (t) => {
    const outer = recordingLogger();
    const inner = recordingLogger();
    const quiet = recordingLogger();
    const { client } = await setup(t, {}, {
      serverInterceptors: [logServerCalls({ logger: outer }), recoverExceptions({ logger: quiet }), logServerCalls({ logger: inner })],
    });
    await rejectsWithStatus(client.fail('plain'), Status.INTERNAL, 'caller');
    await until(() => outer.lines.length === 1 && inner.lines.length === 1, 2000, 'both lines');
    assert.equal(outer.lines[0]!.obj.status, 'INTERNAL');
    assert.equal(inner.lines[0]!.obj.status, 'UNKNOWN');
    assert.match(String(inner.lines[0]!.obj.error), /secret/, 'the inner line (this side\'s log) keeps the real message');
  });

  void test('server: an interceptor that throws, inside recovery and a rate limit, in order; a refusal by the limit is logged by the logger outside it', async (t) => {
    const order: string[] = [];
    const log = recordingLogger();
    const mark = (name: string): ServerInterceptor => (next) => async (call) => {
      order.push(`>${name}`);
      try {
        return await next(call);
      } finally {
        order.push(`<${name}`);
      }
    };
    const throwing: ServerInterceptor = () => () => {
      order.push('throw');
      throw new Error('interceptor bug in /opt/app/x.js');
    };
    const { client, state } = await setup(t, {}, {
      serverInterceptors: [mark('a'), logServerCalls({ logger: log }), rateLimitCalls({ limits: { '*': { ratePerSec: 0.001, burst: 1 } } }), recoverExceptions({ logger: recordingLogger() }), mark('b'), throwing],
    });
    const error = await rejectsWithStatus(client.echo('x'), Status.INTERNAL, 'first call');
    assert.equal(error.rawMessage, 'internal error');
    assert.deepEqual(order, ['>a', '>b', 'throw', '<b', '<a']);
    order.length = 0;
    await rejectsWithStatus(client.echo('x'), Status.RESOURCE_EXHAUSTED, 'second call');
    assert.deepEqual(order, ['>a', '<a'], 'the limit refused before anything inside it ran');
    assert.deepEqual(state.handled, []);
    await until(() => log.lines.length === 2, 2000, 'two log lines');
    assert.deepEqual(log.lines.map((l) => l.obj.status), ['INTERNAL', 'RESOURCE_EXHAUSTED']);
  });

  void test('client: the first is the outermost: an interceptor before defaultDeadlines sees no deadline, one after it sees it; logging outside sees DEADLINE_EXCEEDED', async (t) => {
    const seen: Array<[string, number | undefined]> = [];
    const look = (name: string): ClientInterceptor => (next) => (call) => {
      seen.push([name, call.deadline]);
      return next(call);
    };
    const log = recordingLogger();
    const { client } = await setup(t, { clientInterceptors: [logClientCalls({ logger: log }), look('before'), defaultDeadlines({ '*': 50 }), look('after')] });
    await rejectsWithStatus(client.slow(3000), Status.DEADLINE_EXCEEDED, 'slow');
    assert.equal(seen[0]![0], 'before');
    assert.equal(seen[0]![1], undefined);
    assert.equal(seen[1]![0], 'after');
    assert.ok(typeof seen[1]![1] === 'number');
    await until(() => log.lines.length === 1, 2000, 'a line');
    assert.equal(log.lines[0]!.obj.status, 'DEADLINE_EXCEEDED');
    assert.equal(log.lines[0]!.level, 'warn');
  });

  void test('client: an interceptor that throws fails the call with UNKNOWN, logged by the logger outside it; nothing is sent', async (t) => {
    const log = recordingLogger();
    const throwing: ClientInterceptor = () => () => {
      throw new Error('client interceptor bug');
    };
    const { client, state } = await setup(t, { clientInterceptors: [logClientCalls({ logger: log }), throwing] });
    await rejectsWithStatus(client.echo('x'), Status.UNKNOWN, 'echo');
    await assert.rejects(within(collect(client.count(2)), 2000, 'count'), (e: unknown) => e instanceof RpcError && e.code === Status.UNKNOWN);
    assert.deepEqual(state.handled, []);
    assert.deepEqual(log.lines.map((l) => [l.obj.method, l.obj.status]), [['test.provided.v1/echo', 'UNKNOWN'], ['test.provided.v1/count', 'UNKNOWN']]);
  });
});
