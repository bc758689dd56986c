/**
 * Interceptors on both sides, for every method kind: what a client interceptor sees of an outgoing call (method,
 * metadata, signal, deadline, request) and that it can change it, replace the result or fail the call; what a server
 * interceptor sees (ctx, request) and that it can refuse a call before its handler runs; the order of a chain; and
 * the same seam through listen/connect, channel() (whose transparent retry stays below the chain) and a Mesh.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { describe, test, type TestContext } from 'node:test';

import {
  bidi,
  channel,
  clientStream,
  connect,
  createMemoryPair,
  createSession,
  defineService,
  download,
  listen,
  Mesh,
  RpcError,
  serve,
  serverStream,
  Status,
  unary,
  upload,
  type CallContext,
  type CallOptions,
  type Client,
  type ClientInterceptor,
  type HandlerResult,
  type IncomingCall,
  type MethodKind,
  type OutgoingCall,
  type RpcSession,
  type RpcSessionOptions,
  type ServerInterceptor,
} from '../../src/index.js';
import { Flag, FrameType } from '../../src/wire/constants.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { encodeReset } from '../../src/wire/payloads.js';
import { frameSplitter } from '../fixtures/frame-proxy.js';
import { memoryRpcPair } from '../fixtures/connections.js';
import { helloFrame, rejectsWithStatus, socketPath, until, within } from '../helpers.js';

const CLEANUP_MS = 3000;
const quiet = (): void => undefined;

/** One method of each kind; every answer carries the request metadata `x-added` the handler saw. */
const Kinds = defineService('test.intercept.v1', {
  echo: unary<string, string>(),
  count: serverStream<number, string>(),
  sum: clientStream<number, string>(),
  chat: bidi<string, string>(),
  put: upload<string, string>(),
  get: download<number>(),
});
type KindsClient = Client<(typeof Kinds)['methods']>;
type MethodName = keyof (typeof Kinds)['methods'];
const METHODS: readonly MethodName[] = ['echo', 'count', 'sum', 'chat', 'put', 'get'];
const KIND_OF: Record<MethodName, MethodKind> = { echo: 'unary', count: 'serverStream', sum: 'clientStream', chat: 'bidi', put: 'upload', get: 'download' };

const tagOf = (ctx: CallContext): string => String(ctx.metadata['x-added'] ?? '-');

/** The service, and the names of the handlers that ran (pushed to `handled`). */
function kindsService(handled: string[] = []): { impl: ReturnType<typeof serve>; handled: string[] } {
  const impl = serve(Kinds, {
    echo: (request, ctx) => {
      handled.push('echo');
      return `${request}|${tagOf(ctx)}`;
    },
    count: async function* (n, ctx) {
      handled.push('count');
      for (let i = 0; i < n; i++) yield `${i}|${tagOf(ctx)}`;
    },
    sum: async (requests, ctx) => {
      handled.push('sum');
      let total = 0;
      for await (const n of requests) total += n;
      return `${total}|${tagOf(ctx)}`;
    },
    chat: async function* (requests, ctx) {
      handled.push('chat');
      for await (const text of requests) yield `${text}|${tagOf(ctx)}`;
    },
    put: async (name, body, ctx) => {
      handled.push('put');
      let bytes = 0;
      for await (const chunk of body) bytes += chunk.length;
      return `${name}:${bytes}|${tagOf(ctx)}`;
    },
    get: (n, ctx) => {
      handled.push('get');
      return new TextEncoder().encode(tagOf(ctx).repeat(n));
    },
  });
  return { impl, handled };
}

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of source) out.push(item);
  return out;
}

/** Makes one call of each method and returns its outcome as one string. */
const drive: Record<MethodName, (client: KindsClient, options?: CallOptions) => Promise<string>> = {
  echo: (client, options) => client.echo('hi', options),
  count: async (client, options) => (await collect(client.count(2, options))).join(','),
  sum: (client, options) => client.sum([1, 2, 3], options),
  chat: async (client, options) => {
    const call = client.chat(options);
    await call.send('a');
    await call.send('b');
    call.end();
    return (await collect(call)).join(',');
  },
  put: (client, options) => client.put('f', [new Uint8Array(3), new Uint8Array(4)], options),
  get: async (client, options) => Buffer.concat(await collect(client.get(2, options))).toString(),
};
/** What `drive` returns when the handler saw `x-added: tag`. */
function expected(method: MethodName, tag: string): string {
  return { echo: `hi|${tag}`, count: `0|${tag},1|${tag}`, sum: `6|${tag}`, chat: `a|${tag},b|${tag}`, put: `f:7|${tag}`, get: tag.repeat(2) }[method];
}

/** Two sessions over an in-memory pair: `caller` calls `callee`, which serves Kinds. */
function pair(t: TestContext, callerOptions: RpcSessionOptions, calleeOptions: RpcSessionOptions): Promise<{ caller: RpcSession; callee: RpcSession }> {
  return memoryRpcPair(t, { nodeName: 'caller', ...callerOptions }, { nodeName: 'callee', ...calleeOptions });
}

/** A client interceptor that adds `x-added: tag` to every call. */
const addTag =
  (tag: string): ClientInterceptor =>
  (next) =>
  (call) => {
    call.metadata['x-added'] = tag;
    return next(call);
  };

void describe('client interceptors', () => {
  void test('see every kind: method (service, name, path, kind), a copy of the metadata, signal, deadline and the request; metadata they add reaches the handler', async (t) => {
    const seen: OutgoingCall[] = [];
    const record: ClientInterceptor = (next) => (call) => {
      seen.push(call);
      return next(call);
    };
    const { impl, handled } = kindsService();
    const { caller } = await pair(t, { clientInterceptors: [record, addTag('T')] }, { services: [impl] });
    const client = caller.client(Kinds);
    for (const method of METHODS) {
      const controller = new AbortController();
      const metadata = { 'x-from': 'caller' };
      const options = { signal: controller.signal, timeoutMs: 5000, metadata };
      const before = Date.now();
      assert.equal(await within(drive[method](client, options), CLEANUP_MS, method), expected(method, 'T'), method);
      const call = seen.at(-1)!;
      assert.deepEqual({ ...call.method }, { service: 'test.intercept.v1', name: method, path: `test.intercept.v1/${method}`, kind: KIND_OF[method] });
      assert.equal(call.kind, KIND_OF[method]);
      // the call's own signal, tied to the caller's and to the deadline (interceptor-edges.test.ts checks both)
      assert.ok(call.signal instanceof AbortSignal && call.signal !== controller.signal && !call.signal.aborted, `${method}: the call's signal`);
      assert.ok(call.deadline !== undefined && call.deadline >= before + 5000 && call.deadline <= Date.now() + 5000, `${method}: deadline from timeoutMs`);
      assert.equal(call.options, options);
      assert.equal(call.metadata['x-from'], 'caller');
      assert.deepEqual(metadata, { 'x-from': 'caller' }, `${method}: the caller's metadata object is not changed`);
      if (call.kind === 'unary' || call.kind === 'serverStream' || call.kind === 'download') assert.equal(call.request, { echo: 'hi', count: 2, get: 2 }[method as 'echo']);
      if (call.kind === 'clientStream') assert.deepEqual(call.requests, [1, 2, 3]);
      if (call.kind === 'upload') {
        assert.equal(call.request, 'f');
        assert.equal((call.body as Uint8Array[]).length, 2, 'the body as the caller gave it');
      }
      if (call.kind === 'bidi') assert.equal('request' in call && call.request !== undefined, false, 'bidi requests are sent on the handle');
    }
    assert.equal(seen.length, 6);
    assert.deepEqual(handled, ['echo', 'count', 'sum', 'chat', 'put', 'get']);
  });

  void test('see the result of every kind and can replace the request and the result', async (t) => {
    const results: string[] = [];
    const replace: ClientInterceptor = (next) => async (call) => {
      const changed = call.kind === 'unary' ? next({ ...call, request: 'changed' }) : next(call);
      const result = await changed;
      results.push(result.kind);
      switch (result.kind) {
        case 'unary':
          return { ...result, response: `${String(result.response)}!` };
        case 'serverStream':
          return { ...result, responses: upperCase(result.responses) };
        default:
          return result;
      }
    };
    const { impl } = kindsService();
    const { caller } = await pair(t, { clientInterceptors: [replace] }, { services: [impl] });
    const client = caller.client(Kinds);
    assert.equal(await client.echo('hi'), 'changed|-!');
    assert.deepEqual(await collect(client.count(2)), ['0|-', '1|-'].map((s) => s.toUpperCase()));
    for (const method of ['sum', 'chat', 'put', 'get'] as const) assert.equal(await drive[method](client), expected(method, '-'), method);
    assert.deepEqual(results, ['unary', 'serverStream', 'clientStream', 'bidi', 'upload', 'download']);
  });

  void test('one that throws an RpcError fails every kind with that status, before anything is sent; anything else thrown is UNKNOWN', async (t) => {
    const deny: ClientInterceptor = () => () => {
      throw new RpcError(Status.PERMISSION_DENIED, 'not from here');
    };
    const { impl, handled } = kindsService();
    const { caller, callee } = await pair(t, { clientInterceptors: [deny] }, { services: [impl] });
    const client = caller.client(Kinds);
    for (const method of METHODS) {
      const error = await rejectsWithStatus(drive[method](client), Status.PERMISSION_DENIED, method);
      assert.equal(error.rawMessage, 'not from here');
    }
    // an upload refused by an interceptor lets go of its body (an open file must not wait for GC)
    const body = Readable.from([new Uint8Array(1)]);
    await rejectsWithStatus(client.put('f', body), Status.PERMISSION_DENIED, 'put with a Readable');
    assert.equal(body.destroyed, true, 'the refused body is destroyed');
    assert.deepEqual(handled, [], 'no handler ran');
    assert.equal(callee.streamCount, 0, 'no stream was opened');

    const { caller: other } = await pair(t, { clientInterceptors: [(next) => async (call) => (call.kind === 'unary' ? Promise.reject(new TypeError('oops')) : next(call))] }, { services: [impl] });
    const error = await rejectsWithStatus(other.client(Kinds).echo('x'), Status.UNKNOWN, 'a TypeError');
    assert.equal(error.rawMessage, 'oops');
  });

  void test('a call that fails reaches the interceptor as an RpcError it can observe (and rethrow)', async (t) => {
    const observed: Status[] = [];
    const observe: ClientInterceptor = (next) => async (call) => {
      try {
        return await next(call);
      } catch (error) {
        observed.push((error as RpcError).code);
        throw error;
      }
    };
    const { caller } = await pair(t, { clientInterceptors: [observe] }, {});
    await rejectsWithStatus(caller.client(Kinds).echo('x'), Status.UNIMPLEMENTED, 'a method the peer does not serve');
    assert.deepEqual(observed, [Status.UNIMPLEMENTED]);
  });
});

void describe('server interceptors', () => {
  void test('see every kind: method, ctx (method, peer, metadata, deadline, signal) and what the caller sent; then what the handler returned', async (t) => {
    const seen: IncomingCall[] = [];
    const returned: HandlerResult[] = [];
    const record: ServerInterceptor = (next) => async (call) => {
      seen.push(call);
      const result = await next(call);
      returned.push(result);
      return result;
    };
    const { impl, handled } = kindsService();
    const { caller } = await pair(t, { clientInterceptors: [addTag('T')] }, { services: [impl], serverInterceptors: [record] });
    const client = caller.client(Kinds);
    for (const method of METHODS) {
      const before = Date.now();
      assert.equal(await within(drive[method](client, { timeoutMs: 5000 }), CLEANUP_MS, method), expected(method, 'T'), method);
      const call = seen.at(-1)!;
      assert.deepEqual({ ...call.method }, { service: 'test.intercept.v1', name: method, path: `test.intercept.v1/${method}`, kind: KIND_OF[method] });
      assert.equal(call.kind, KIND_OF[method]);
      assert.equal(call.ctx.method, `test.intercept.v1/${method}`);
      assert.equal(call.ctx.peer.nodeName, 'caller');
      assert.equal(call.ctx.metadata['x-added'], 'T');
      assert.ok(call.ctx.deadline !== undefined && call.ctx.deadline >= before + 4000 && call.ctx.deadline <= Date.now() + 5001, `${method}: deadline`);
      assert.ok(call.ctx.signal instanceof AbortSignal);
      if (call.kind === 'unary' || call.kind === 'serverStream' || call.kind === 'download') assert.equal(call.request, { echo: 'hi', count: 2, get: 2 }[method as 'echo']);
      if (call.kind === 'clientStream' || call.kind === 'bidi') assert.equal(typeof call.requests[Symbol.asyncIterator], 'function');
      if (call.kind === 'upload') {
        assert.equal(call.request, 'f');
        assert.equal(typeof call.body[Symbol.asyncIterator], 'function');
      }
      const result = returned.at(-1)!;
      assert.equal(result.kind, KIND_OF[method]);
      if (result.kind === 'serverStream' || result.kind === 'bidi') assert.equal(typeof (result.responses as AsyncIterable<unknown>)[Symbol.asyncIterator], 'function');
      else if (result.kind === 'download') assert.ok(result.body instanceof Uint8Array);
      else assert.equal(result.response, expected(method, 'T'), `${result.kind}: the handler's response`);
    }
    assert.deepEqual(handled, ['echo', 'count', 'sum', 'chat', 'put', 'get']);
  });

  void test('one that throws before next refuses every kind: the caller gets its status and message, no handler runs', async (t) => {
    const refuse: ServerInterceptor = (next) => (call) => {
      if (call.ctx.metadata.authorization !== 'yes') throw new RpcError(Status.UNAUTHENTICATED, 'who are you?');
      return next(call);
    };
    const { impl, handled } = kindsService();
    const { caller, callee } = await pair(t, {}, { services: [impl], serverInterceptors: [refuse] });
    const client = caller.client(Kinds);
    for (const method of METHODS) {
      const error = await rejectsWithStatus(within(drive[method](client), CLEANUP_MS, method), Status.UNAUTHENTICATED, method);
      assert.equal(error.rawMessage, 'who are you?');
    }
    assert.deepEqual(handled, [], 'no handler ran');
    await until(() => callee.streamCount === 0, CLEANUP_MS, 'every refused call released its stream');
    assert.equal(await client.echo('hi', { metadata: { authorization: 'yes' } }), 'hi|-', 'an authorised call goes through');
  });

  void test('can replace the request and the response, and wrap a response stream', async (t) => {
    const replace: ServerInterceptor = (next) => async (call) => {
      const result = await next(call.kind === 'unary' ? { ...call, request: 'changed' } : call);
      if (result.kind === 'unary') return { ...result, response: `${String(result.response)}!` };
      if (result.kind === 'serverStream') return { ...result, responses: upperCase(result.responses as AsyncIterable<string>) };
      return result;
    };
    const { impl } = kindsService();
    const { caller } = await pair(t, {}, { services: [impl], serverInterceptors: [replace] });
    const client = caller.client(Kinds);
    assert.equal(await client.echo('hi'), 'changed|-!');
    assert.deepEqual(await collect(client.count(2)), ['0|-', '1|-'].map((s) => s.toUpperCase()));
  });

  void test('an interceptor that returns a result of the wrong kind fails the call INTERNAL', async (t) => {
    const wrong: ServerInterceptor = () => async () => ({ kind: 'download', body: new Uint8Array(1) });
    const { impl } = kindsService();
    const { caller } = await pair(t, {}, { services: [impl], serverInterceptors: [wrong] });
    const error = await rejectsWithStatus(caller.client(Kinds).echo('x'), Status.INTERNAL, 'a download result for a unary call');
    assert.match(error.message, /download result for a unary call/);
  });
});

void describe('interceptor chains', () => {
  void test('two on each side run in order: the first outermost, in on the way in, out on the way back', async (t) => {
    const log: string[] = [];
    const clientStep = (name: string): ClientInterceptor => (next) => async (call) => {
      log.push(`${name} in`);
      const result = await next(call);
      log.push(`${name} out`);
      return result;
    };
    const serverStep = (name: string): ServerInterceptor => (next) => async (call) => {
      log.push(`${name} in`);
      const result = await next(call);
      log.push(`${name} out`);
      return result;
    };
    const { impl } = kindsService(log); // the handler logs its name
    const { caller } = await pair(t, { clientInterceptors: [clientStep('c1'), clientStep('c2')] }, { services: [impl], serverInterceptors: [serverStep('s1'), serverStep('s2')] });
    assert.equal(await caller.client(Kinds).echo('x'), 'x|-');
    assert.deepEqual(log, ['c1 in', 'c2 in', 's1 in', 's2 in', 'echo', 's2 out', 's1 out', 'c2 out', 'c1 out']);
    log.length = 0;
    assert.deepEqual(await collect(caller.client(Kinds).count(1)), ['0|-']);
    // a stream's result is its response stream: the chain has returned before the handler's generator runs
    assert.deepEqual(log, ['c1 in', 'c2 in', 'c2 out', 'c1 out', 's1 in', 's2 in', 's2 out', 's1 out', 'count']);
  });

  void test('options that are not lists of functions are refused where they are given', () => {
    const [a] = createMemoryPair();
    assert.throws(() => createSession(a, 'dialer', { clientInterceptors: [42 as unknown as ClientInterceptor] }), /clientInterceptors must be an array of interceptor functions/);
    assert.throws(() => createSession(a, 'dialer', { serverInterceptors: {} as unknown as ServerInterceptor[] }), /serverInterceptors must be an array/);
    assert.throws(() => channel('unix:///nonexistent', { serverInterceptors: [null as unknown as ServerInterceptor] }), /serverInterceptors/);
    a.destroy();
  });
});

void describe('interceptors through listen/connect, channel() and Mesh', () => {
  async function listenKinds(t: TestContext, options: RpcSessionOptions): Promise<{ url: string; handled: string[] }> {
    const { impl, handled } = kindsService();
    const server = await listen(unixUrl(t), { log: quiet, ...options, services: [impl] });
    t.after(async () => {
      for (const s of server.sessions) s.destroy();
      await within(server.close({ graceMs: 0 }), CLEANUP_MS, 'server close');
    });
    return { url: server.url, handled };
  }

  void test('listen({ serverInterceptors }) and connect({ clientInterceptors })', async (t) => {
    const serverSaw: string[] = [];
    const { url } = await listenKinds(t, { serverInterceptors: [(next) => (call) => (serverSaw.push(String(call.ctx.metadata['x-added'])), next(call))] });
    const session = await connect(url, { clientInterceptors: [addTag('C')] });
    t.after(() => session.destroy());
    for (const method of METHODS) assert.equal(await within(drive[method](session.client(Kinds)), CLEANUP_MS, method), expected(method, 'C'), method);
    assert.deepEqual(serverSaw, ['C', 'C', 'C', 'C', 'C', 'C']);
  });

  void test("channel({ clientInterceptors }): every kind goes through the chain, and the channel's sessions get the same options", async (t) => {
    const serverSaw: string[] = [];
    const { url } = await listenKinds(t, { serverInterceptors: [(next) => (call) => (serverSaw.push(call.method.name), next(call))] });
    const ch = channel(url, { log: quiet, clientInterceptors: [addTag('CH')] });
    t.after(() => within(ch.close({ graceMs: 0 }), CLEANUP_MS, 'channel close'));
    for (const method of METHODS) assert.equal(await within(drive[method](ch.client(Kinds), { waitForReady: true, timeoutMs: 2000 }), CLEANUP_MS, method), expected(method, 'CH'), method);
    assert.equal(await ch.session!.client(Kinds).echo('hi'), 'hi|CH', "the channel's current session has the interceptors too");
    assert.deepEqual(serverSaw, [...METHODS, 'echo']);
  });

  void test('channel: the transparent retry stays below the chain — the interceptor sees one call, the peer two attempts', { timeout: 10_000 }, async (t) => {
    const refuser = await refuseEverything(t);
    const calls: string[] = [];
    const ch = channel(refuser.url, { log: quiet, clientInterceptors: [(next) => (call) => (calls.push(call.method.name), next(call))] });
    t.after(() => within(ch.close({ graceMs: 0 }), CLEANUP_MS, 'channel close'));
    await within(ch.whenReady(), CLEANUP_MS, 'the channel to connect');
    const client = ch.client(Kinds);
    for (const method of ['echo', 'count', 'get'] as const) {
      const before = refuser.opens();
      const error = await rejectsWithStatus(within(drive[method](client), CLEANUP_MS, method), Status.UNAVAILABLE, method);
      assert.equal(error.retrySafe, true);
      assert.equal(refuser.opens() - before, 2, `${method}: sent twice (one retry)`);
    }
    const before = refuser.opens();
    await rejectsWithStatus(drive.put(client), Status.UNAVAILABLE, 'put');
    assert.equal(refuser.opens() - before, 1, 'an upload is never retried');
    assert.deepEqual(calls, ['echo', 'count', 'get', 'put'], 'each call went through the chain once');
  });

  void test('Mesh({ clientInterceptors, serverInterceptors }): a call between two nodes goes through the caller\'s client chain and the callee\'s server chain', { timeout: 10_000 }, async (t) => {
    const { impl, handled } = kindsService();
    const serverSaw: string[] = [];
    const aUrl = unixUrl(t);
    const bUrl = unixUrl(t);
    const a = new Mesh({ name: 'a', listen: aUrl, peers: { b: bUrl }, log: quiet, clientInterceptors: [addTag('MESH')] });
    const b = new Mesh({
      name: 'b',
      listen: bUrl,
      peers: { a: aUrl },
      log: quiet,
      services: [impl],
      serverInterceptors: [(next) => (call) => (serverSaw.push(`${call.ctx.peer.nodeName}:${call.method.name}`), next(call))],
    });
    t.after(() => within(Promise.all([a.stop({ graceMs: 0 }), b.stop({ graceMs: 0 })]), CLEANUP_MS, 'meshes to stop'));
    await Promise.all([a.start(), b.start()]);
    await within(a.peer('b').whenReady({ timeoutMs: 5000 }), 6000, 'a to reach b');
    const client = a.peer('b').client(Kinds);
    for (const method of METHODS) assert.equal(await within(drive[method](client), CLEANUP_MS, method), expected(method, 'MESH'), method);
    assert.deepEqual(serverSaw, METHODS.map((m) => `a:${m}`));
    assert.equal(handled.length, 6);
  });
});

/** A Unix socket address, removed after the test. */
function unixUrl(t: TestContext): string {
  const path = socketPath();
  t.after(() => rm(path, { force: true }));
  return `unix://${path}`;
}

async function* upperCase(source: AsyncIterable<unknown>): AsyncGenerator<string, undefined> {
  for await (const item of source) yield String(item).toUpperCase();
  return undefined;
}

/** A raw server that speaks HELLO and refuses every stream (RESET REFUSED, UNAVAILABLE), counting OPENs. */
async function refuseEverything(t: TestContext): Promise<{ url: string; opens(): number }> {
  let opens = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.write(helloFrame({ nodeName: 'refuser' }));
    socket.on(
      'data',
      frameSplitter((header) => {
        if (header.type !== FrameType.OPEN) return;
        opens++;
        socket.write(encodeFrame({ type: FrameType.RESET, flags: Flag.REFUSED, streamId: header.streamId, payload: encodeReset(Status.UNAVAILABLE, 'refused by the test') }));
      }),
    );
  });
  const url = unixUrl(t);
  await new Promise<void>((resolve) => server.listen(new URL(url).pathname, resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { url, opens: () => opens };
}
