/**
 * Authorization (the `authorize` option and the `authorizeCalls` interceptor, T-Z5): it runs before every call of
 * every kind, outermost, and sees the method exactly as routing matched it. Paths that only look like a method (case,
 * slashes, NUL, whitespace, confusable Unicode: grpc-go CVE-2026-33186 was a route/authz mismatch) are UNIMPLEMENTED
 * and never reach it. A refusal is PERMISSION_DENIED with its reason; a failure of authorize itself is
 * PERMISSION_DENIED "authorization failed", logged and never told. Over a memory pair, TCP, and a mesh both ways.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';

import {
  authorizeCalls,
  bidi,
  clientStream,
  connect,
  createMemoryPair,
  createSession,
  defineService,
  download,
  RpcError,
  serve,
  serverStream,
  Status,
  statusName,
  unary,
  upload,
  type Client,
  type HandlerContext,
  type RpcSession,
  type RpcSessionOptions,
  type ServerInterceptor,
} from '../../src/index.js';
import { FrameType } from '../../src/wire/constants.js';
import { utf8 } from '../../src/wire/bytes.js';
import { memoryRpcPair, newMesh, startServer, unixUrl } from '../fixtures/connections.js';
import { collect, tapFrames } from '../fixtures/sessions.js';
import { sleep, until, within } from '../helpers.js';

const Authz = defineService('authz.v1', {
  echo: unary<string, string>(),
  ticks: serverStream<number, number>(),
  sum: clientStream<number, number>(),
  chat: bidi<string, string>(),
  put: upload<string, number>(),
  get: download<number>(),
});
type AuthzClient = Client<typeof Authz.methods>;

/** The service, counting handler runs by method name. */
function authzService(runs: Map<string, number>): ReturnType<typeof serve> {
  const ran = (name: string): void => void runs.set(name, (runs.get(name) ?? 0) + 1);
  return serve(Authz, {
    echo: (text) => (ran('echo'), text),
    ticks: async function* (n) {
      ran('ticks');
      for (let i = 0; i < n; i++) yield i;
    },
    sum: async (numbers) => {
      ran('sum');
      let total = 0;
      for await (const n of numbers) total += n;
      return total;
    },
    chat: async function* (texts) {
      ran('chat');
      for await (const text of texts) yield text;
    },
    put: async (_name, body) => {
      ran('put');
      let bytes = 0;
      for await (const chunk of body) bytes += chunk.length;
      return bytes;
    },
    get: function* (n) {
      ran('get');
      yield new Uint8Array(n);
    },
  });
}

async function drain<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of source) out.push(item);
  return out;
}

/** One call of each kind, read to its end. */
const CALLS: Record<keyof typeof Authz.methods, (client: AuthzClient) => Promise<unknown>> = {
  echo: (c) => c.echo('hi'),
  ticks: (c) => drain(c.ticks(2)),
  sum: (c) => c.sum([1, 2]),
  chat: (c) => drain(c.chat(['a', 'b'])),
  put: (c) => c.put('file', [new Uint8Array(100)]),
  get: (c) => drain(c.get(100)),
};
const KINDS = Object.keys(CALLS) as Array<keyof typeof CALLS>;

/** 'ok', or the status name and message of the RpcError the call failed with. */
function outcome(call: Promise<unknown>): Promise<string> {
  return call.then(
    () => 'ok',
    (error: unknown) => (error instanceof RpcError ? `${statusName(error.code)}: ${error.rawMessage}` : `not an RpcError: ${String(error)}`),
  );
}

async function pair(
  t: Parameters<typeof memoryRpcPair>[0],
  callee: RpcSessionOptions,
  caller: RpcSessionOptions = {},
): Promise<{ client: AuthzClient; runs: Map<string, number>; caller: Awaited<ReturnType<typeof memoryRpcPair>>['caller'] }> {
  const runs = new Map<string, number>();
  const sessions = await memoryRpcPair(t, { nodeName: 'caller', label: 'control', ...caller }, { services: [authzService(runs)], log: () => undefined, ...callee });
  return { client: sessions.caller.client(Authz), runs, caller: sessions.caller };
}

// ---------------------------------------------------------------- method names

/** Strings that are not the method `authz.v1/echo`, however much they look like it. */
const CONFUSABLES: ReadonlyArray<[string, string]> = [
  ['case: service', 'Authz.v1/echo'],
  ['case: method', 'authz.v1/Echo'],
  ['case: all', 'AUTHZ.V1/ECHO'],
  ['leading slash', '/authz.v1/echo'],
  ['two leading slashes', '//authz.v1/echo'],
  ['doubled slash', 'authz.v1//echo'],
  ['trailing slash', 'authz.v1/echo/'],
  ['dot segment', 'authz.v1/./echo'],
  ['dot-dot segment', 'authz.v1/../authz.v1/echo'],
  ['backslash', 'authz.v1\\echo'],
  ['no separator', 'authz.v1echo'],
  ['dot separator', 'authz.v1.echo'],
  ['percent-encoded slash', 'authz.v1%2Fecho'],
  ['trailing NUL', 'authz.v1/echo\0'],
  ['leading NUL', '\0authz.v1/echo'],
  ['NUL before the slash', 'authz.v1\0/echo'],
  ['leading space', ' authz.v1/echo'],
  ['trailing space', 'authz.v1/echo '],
  ['trailing newline', 'authz.v1/echo\n'],
  ['tab', 'authz.v1/\techo'],
  ['zero-width space', 'authz.v1/ec\u200bho'],
  ['fullwidth letters', 'ａｕｔｈｚ.v1/ｅｃｈｏ'],
  ['fullwidth solidus', 'authz.v1／echo'],
  ['division slash', 'authz.v1\u2215echo'],
  ['Cyrillic e', 'authz.v1/\u0435cho'],
  ['combining accent', 'authz.v1/e\u0301cho'],
  ['the service alone', 'authz.v1'],
  ['the method alone', 'echo'],
];

void describe('T-Z5 method names are matched exactly, and authorize sees the name routing matched', () => {
  void test('T-Z5 every confusable of authz.v1/echo is UNIMPLEMENTED and never reaches authorize or a handler; the real call reaches authorize once, with ctx.method exactly "authz.v1/echo"', { timeout: 10_000 }, async (t) => {
    const seen: string[] = [];
    const { client, runs, caller } = await pair(t, { authorize: (ctx) => (seen.push(ctx.method), true) });
    for (const [what, path] of CONFUSABLES) {
      const stream = caller.core.openStream(utf8(path));
      const done = collect(stream);
      stream.sendMessage(new Uint8Array([0xa1, 0x78]), true); // msgpack 'x', then the end of the request
      const result = await within(done, 2000, what);
      assert.equal(result.reset?.status, Status.UNIMPLEMENTED, `${what} (${JSON.stringify(path)}): ${JSON.stringify(result.reset ?? result.trailer)}`);
    }
    assert.deepEqual(seen, [], 'authorize saw none of them');
    assert.equal(runs.size, 0, 'no handler ran');
    assert.equal(await client.echo('real'), 'real');
    assert.deepEqual(seen, ['authz.v1/echo'], 'authorize saw the real call, with the routed path');
    assert.equal(Authz.descriptors.get('echo')!.path, seen[0]);
  });
});

// ---------------------------------------------------------------- refusals

void describe('T-Z5 authorize refuses with PERMISSION_DENIED and its reason, every kind, before any handler or interceptor', () => {
  void test('T-Z5 refusing by method: every kind of a refused method fails PERMISSION_DENIED with the reason; the others run', { timeout: 10_000 }, async (t) => {
    for (const refusedKind of KINDS) {
      const refused = `authz.v1/${refusedKind}`;
      const { client, runs } = await pair(t, { authorize: (ctx) => ctx.method !== refused || `${ctx.method} is for admins` });
      for (const kind of KINDS) {
        const result = await within(outcome(CALLS[kind](client)), 3000, kind);
        if (kind === refusedKind) {
          assert.equal(result, `PERMISSION_DENIED: ${refused} is for admins`, kind);
          assert.equal(runs.get(kind), undefined, `the ${kind} handler did not run`);
        } else {
          assert.equal(result, 'ok', kind);
        }
      }
    }
  });

  void test('T-Z5 refusing by peer (nodeName and label of its HELLO): the same calls pass for one peer and fail PERMISSION_DENIED for another', { timeout: 10_000 }, async (t) => {
    const authorize = (ctx: HandlerContext): true | string =>
      ctx.peer.nodeName === 'ops' && ctx.peer.label === 'admin' ? true : `node ${ctx.peer.nodeName} (${ctx.peer.label}) may not call ${ctx.method}`;
    const ops = await pair(t, { authorize }, { nodeName: 'ops', label: 'admin' });
    const other = await pair(t, { authorize }, { nodeName: 'ops', label: 'control' });
    for (const kind of KINDS) {
      assert.equal(await within(outcome(CALLS[kind](ops.client)), 3000, kind), 'ok', `ops/admin: ${kind}`);
      assert.equal(await within(outcome(CALLS[kind](other.client)), 3000, kind), `PERMISSION_DENIED: node ops (control) may not call authz.v1/${kind}`);
    }
    assert.equal(other.runs.size, 0, 'no handler ran for the refused peer');
  });

  void test('T-Z5 an async authorize: a promise of true runs the call, a promise of a reason refuses it', { timeout: 5000 }, async (t) => {
    const { client, runs } = await pair(t, {
      authorize: async (ctx) => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        return ctx.method.endsWith('/echo') || 'only echo';
      },
    });
    assert.equal(await outcome(CALLS.echo(client)), 'ok');
    assert.equal(await outcome(CALLS.chat(client)), 'PERMISSION_DENIED: only echo');
    assert.equal(runs.get('chat'), undefined);
  });

  for (const [what, authorize] of [
    ['throws', (): true => { throw new Error('the policy store at 10.0.0.7 is down'); }],
    ['rejects', (): Promise<true> => Promise.reject(new Error('the policy store at 10.0.0.7 is down'))],
    ['returns undefined (a forgotten return)', ((): undefined => undefined) as unknown as () => true],
    ['returns false', ((): boolean => false) as unknown as () => true],
  ] as const) {
    void test(`T-Z5 an authorize that ${what}: PERMISSION_DENIED "authorization failed" (fails closed), the error logged and not told`, { timeout: 5000 }, async (t) => {
      const logs: string[] = [];
      const { client, runs } = await pair(t, { authorize, log: (level, message) => logs.push(`${level} ${message}`) });
      for (const kind of KINDS) assert.equal(await within(outcome(CALLS[kind](client)), 3000, kind), 'PERMISSION_DENIED: authorization failed', kind);
      assert.equal(runs.size, 0);
      assert.equal(logs.length, KINDS.length, logs.join('\n'));
      assert.match(logs[0]!, /^warn authorize failed for authz\.v1\/echo from memory:\/\/\w: /);
      if (what === 'throws' || what === 'rejects') assert.match(logs[0]!, /policy store at 10\.0\.0\.7 is down/);
    });
  }

  void test('T-Z5 the authorize option runs outermost: a refused call never reaches the serverInterceptors; an allowed one does', { timeout: 5000 }, async (t) => {
    const reached: string[] = [];
    const spy: ServerInterceptor = (next) => (call) => (reached.push(call.method.path), next(call));
    const { client } = await pair(t, { authorize: (ctx) => ctx.method === 'authz.v1/echo' || 'no', serverInterceptors: [spy] });
    assert.equal(await outcome(CALLS.echo(client)), 'ok');
    assert.equal(await outcome(CALLS.sum(client)), 'PERMISSION_DENIED: no');
    assert.deepEqual(reached, ['authz.v1/echo']);
  });

  void test('T-Z5 authorizeCalls(fn) as an explicit server interceptor refuses the same way', { timeout: 5000 }, async (t) => {
    const { client, runs } = await pair(t, { serverInterceptors: [authorizeCalls((ctx) => ctx.method !== 'authz.v1/put' || 'read only', () => undefined)] });
    assert.equal(await outcome(CALLS.put(client)), 'PERMISSION_DENIED: read only');
    assert.equal(await outcome(CALLS.get(client)), 'ok');
    assert.equal(runs.get('put'), undefined);
  });

  void test('T-Z5 authorize must be a function (TypeError where options are given, and for authorizeCalls)', async () => {
    await assert.rejects(connect('tcp://127.0.0.1:1', { authorize: 'admins' as never }), /authorize must be a function/);
    assert.throws(() => authorizeCalls(undefined as never), TypeError);
  });
});

// ---------------------------------------------------------------- before the request is read

/** A Standard Schema validator that counts its runs and wants a string. */
function countingSchema(runs: { n: number }): StandardSchemaV1<unknown, string> {
  return {
    '~standard': {
      version: 1,
      vendor: 'test',
      validate: (value) => (runs.n++, typeof value === 'string' ? { value } : { issues: [{ message: 'must be a string (schema detail)' }] }),
    },
  };
}

/** Two sessions over a memory pair, and every frame the callee writes (to see the CREDIT it grants). */
async function tappedPair(t: TestContext, callee: RpcSessionOptions): Promise<{ caller: RpcSession; callee: RpcSession; written: ReturnType<typeof tapFrames> }> {
  const [a, b] = createMemoryPair();
  const written = tapFrames(b);
  const caller = createSession(a, 'dialer', {});
  const session = createSession(b, 'acceptor', { log: () => undefined, ...callee });
  t.after(() => {
    caller.destroy();
    session.destroy();
  });
  await within(Promise.all([caller.ready, session.ready]), 2000, 'ready');
  return { caller, callee: session, written };
}

const later = <T>(value: T, ms = 20): Promise<T> => new Promise((resolve) => setTimeout(() => resolve(value), ms));

void describe('T-Z5 the authorize option runs as the call opens, before anything of the request is read', () => {
  for (const [how, answer] of [
    ['answers at once', <T>(value: T): T => value],
    ['answers with a promise', <T>(value: T): Promise<T> => later(value)],
  ] as const) {
    void test(`T-Z5 authorize ${how}: a refused caller sending a schema-invalid or undecodable request gets PERMISSION_DENIED, and neither the codec nor the validator runs for it`, { timeout: 5000 }, async (t) => {
      const validated = { n: 0 };
      const Strict = defineService('authz.v1', { echo: unary({ input: countingSchema(validated) }), sum: clientStream({ input: countingSchema(validated) }) });
      const Loose = defineService('authz.v1', { echo: unary<unknown, unknown>(), sum: clientStream<unknown, unknown>() });
      let ran = 0;
      const service = serve(Strict, { echo: (text) => (ran++, text), sum: async (texts) => { ran++; for await (const text of texts) void text; return 'x'; } });
      const { caller } = await tappedPair(t, { services: [service], authorize: () => answer('not you') });
      const loose = caller.client(Loose);
      assert.equal(await within(outcome(loose.echo(42)), 2000, 'echo'), 'PERMISSION_DENIED: not you', 'not INVALID_ARGUMENT with the schema\'s detail');
      assert.equal(await within(outcome(loose.sum([42, 43])), 2000, 'sum'), 'PERMISSION_DENIED: not you');
      // bytes that are no msgpack at all: refused before any decoding, not INTERNAL "could not decode"
      const stream = caller.core.openStream(utf8('authz.v1/echo'));
      const done = collect(stream);
      stream.sendMessage(Uint8Array.of(0xc1), true);
      const result = await within(done, 2000, 'raw echo');
      assert.equal(result.trailer?.status ?? result.reset?.status, Status.PERMISSION_DENIED, JSON.stringify(result));
      assert.equal(validated.n, 0, 'the validator never ran for a refused caller');
      assert.equal(ran, 0);
      // and for an allowed caller it still does
      const { caller: allowed } = await tappedPair(t, { services: [service], authorize: () => answer(true) });
      assert.match(await within(outcome(allowed.client(Loose).echo(42)), 2000, 'allowed echo'), /^INVALID_ARGUMENT: invalid request: must be a string \(schema detail\)/);
      assert.equal(validated.n, 1);
    });

    void test(`T-Z5 authorize ${how}: a refused upload is granted no window beyond the initial one (no CREDIT on its stream); an allowed one gets its bulk window`, { timeout: 5000 }, async (t) => {
      const runs = new Map<string, number>();
      const refused = await tappedPair(t, { services: [authzService(runs)], authorize: (ctx) => answer(ctx.method !== 'authz.v1/put' || 'read only') });
      const chunks = Array.from({ length: 32 }, () => new Uint8Array(32 * 1024)); // 1 MiB: four initial windows
      assert.equal(await within(outcome(refused.caller.client(Authz).put('file', chunks)), 3000, 'put'), 'PERMISSION_DENIED: read only');
      const credit = refused.written.filter((f) => f.type === FrameType.CREDIT && f.streamId !== 0);
      assert.deepEqual(credit.map((f) => f.streamId), [], 'no stream CREDIT for the refused upload');
      assert.equal(runs.get('put'), undefined);

      const allowed = await tappedPair(t, { services: [authzService(runs)], authorize: () => answer(true) });
      assert.equal(await within(outcome(allowed.caller.client(Authz).put('file', chunks)), 3000, 'allowed put'), 'ok');
      assert.ok(allowed.written.some((f) => f.type === FrameType.CREDIT && f.streamId !== 0), 'the allowed upload was granted credit');
    });

    void test(`T-Z5 authorize ${how}: called exactly once per call, for every kind, with the request metadata; everything the caller sent meanwhile is served`, { timeout: 10_000 }, async (t) => {
      const seen: string[] = [];
      const runs = new Map<string, number>();
      const { caller } = await tappedPair(t, {
        services: [authzService(runs)],
        authorize: (ctx) => (seen.push(`${ctx.method} ${String(ctx.metadata['x-who'])}`), answer(true)),
      });
      const client = caller.client(Authz);
      const metadata = { 'x-who': 'tester' };
      const many = Array.from({ length: 3000 }, (_, i) => i); // beyond the initial message window (1 024)
      const bytes = Array.from({ length: 24 }, () => new Uint8Array(64 * 1024)); // 1.5 MiB: beyond the initial window
      const results = await within(
        Promise.all([
          client.echo('hi', { metadata }),
          drain(client.ticks(3, { metadata })),
          client.sum(many, { metadata }),
          drain(client.chat(['a', 'b', 'c'], { metadata })),
          client.put('file', bytes, { metadata }),
          drain(client.get(100, { metadata })),
        ]),
        5000,
        'every kind',
      );
      assert.deepEqual(results.slice(0, 5), ['hi', [0, 1, 2], (2999 * 3000) / 2, ['a', 'b', 'c'], 24 * 64 * 1024]);
      assert.deepEqual(seen.sort(), KINDS.map((kind) => `authz.v1/${kind} tester`).sort(), 'once per call');
      assert.deepEqual([...runs.values()], [1, 1, 1, 1, 1, 1]);
    });
  }

  void test('T-Z5 the caller cancels while an async authorize is pending: the call ends, its handler never runs, the slot frees once authorize answers', { timeout: 5000 }, async (t) => {
    const verdicts: Array<(answer: true) => void> = [];
    const runs = new Map<string, number>();
    const { caller, callee } = await tappedPair(t, { services: [authzService(runs)], authorize: () => new Promise<true>((resolve) => verdicts.push(resolve)) });
    const abort = new AbortController();
    const call = outcome(caller.client(Authz).sum([1, 2, 3], { signal: abort.signal }));
    await until(() => verdicts.length === 1, 1000, 'authorize asked');
    abort.abort();
    assert.match(await within(call, 1000, 'the call'), /^CANCELLED/);
    await until(() => callee.streamCount === 0, 1000, 'the callee reads the RESET');
    verdicts[0]!(true);
    await sleep(20);
    assert.equal(runs.size, 0, 'no handler ran for a cancelled call');
    const next = caller.client(Authz).echo('next');
    await until(() => verdicts.length === 2, 1000, 'authorize asked about the next call');
    verdicts[1]!(true);
    assert.equal(await within(next, 1000, 'next call'), 'next');
  });
});

// ---------------------------------------------------------------- listen, mesh

void test('T-Z5 listen({ authorize }) over TCP: a refused call is PERMISSION_DENIED with the reason; ctx.peer is the caller', { timeout: 5000 }, async (t) => {
  const runs = new Map<string, number>();
  const { server } = await startServer(t, {
    services: [authzService(runs)],
    authorize: (ctx) => (ctx.peer.nodeName === 'reader' && ctx.method !== 'authz.v1/echo' ? `${ctx.peer.nodeName} may only echo` : true),
  });
  const session = await within(connect(server.url, { nodeName: 'reader' }), 3000, 'connect');
  t.after(() => session.destroy());
  const client = session.client(Authz);
  assert.equal(await outcome(CALLS.echo(client)), 'ok');
  assert.equal(await outcome(CALLS.ticks(client)), 'PERMISSION_DENIED: reader may only echo');
  assert.equal(runs.get('ticks'), undefined);
});

void test('T-Z5 a Mesh with authorize: calls in both directions are checked, with the calling node as ctx.peer', { timeout: 10_000 }, async (t) => {
  const seen: string[] = [];
  const authorize = (ctx: HandlerContext): true | string => {
    seen.push(`${ctx.peer.nodeName}->${ctx.method}`);
    return ctx.method === 'authz.v1/echo' || `${ctx.peer.nodeName} may not call ${ctx.method}`;
  };
  const runsA = new Map<string, number>();
  const runsB = new Map<string, number>();
  const urls = { a: unixUrl(t), b: unixUrl(t) };
  const a = newMesh(t, { name: 'a', listen: urls.a, peers: { b: urls.b }, services: [authzService(runsA)], authorize, fallbackDialAfterMs: 100 });
  const b = newMesh(t, { name: 'b', listen: urls.b, peers: { a: urls.a }, services: [authzService(runsB)], authorize, fallbackDialAfterMs: 100 });
  await Promise.all([a.start(), b.start()]);
  await within(Promise.all([a.peer('b').whenReady(), b.peer('a').whenReady()]), 4000, 'ready');
  const toB = a.peer('b').client(Authz);
  const toA = b.peer('a').client(Authz);
  assert.equal(await outcome(toB.echo('x')), 'ok');
  assert.equal(await outcome(toA.echo('y')), 'ok');
  assert.equal(await outcome(toB.sum([1])), 'PERMISSION_DENIED: a may not call authz.v1/sum');
  assert.equal(await outcome(drain(toA.get(1))), 'PERMISSION_DENIED: b may not call authz.v1/get');
  assert.deepEqual(seen.sort(), ['a->authz.v1/echo', 'a->authz.v1/sum', 'b->authz.v1/echo', 'b->authz.v1/get']);
  assert.equal(runsB.get('sum'), undefined);
  assert.equal(runsA.get('get'), undefined);
});

