/**
 * The errors a user meets outside a handler's own: every rejection of a public promise (ping, ready, whenReady,
 * listen, mesh.start, a bidi send) is an RpcError with a status that says what happened (UNAVAILABLE with "closed"
 * after close, retrySafe when nothing was sent); mistakes in the arguments themselves are TypeErrors and RangeErrors.
 * And errors that say what to do: a message over maxMessageBytes names the option, the size and the limit; invalid
 * request metadata and a request the codec refuses are the caller's mistake (INVALID_ARGUMENT, not INTERNAL); bytes
 * that do not decode name the codec and point at the two sides' service definitions.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

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
  serve,
  serverStream,
  Status,
  unary,
  upload,
  type CallOptions,
  type ClientInterceptor,
  type MessageStream,
  type RpcSession,
  type ServiceImpl,
} from '../../src/index.js';
import { openChannel, startServer } from '../fixtures/connections.js';
import { againstRawPeer } from '../fixtures/sessions.js';
import { openConn, rejectsWithStatus, socketPath, within } from '../helpers.js';

void describe('every rejection a user can see is an RpcError', () => {
  void test('ping() after close(): UNAVAILABLE, says the session is closed, retrySafe (no PING was sent)', { timeout: 5000 }, async (t) => {
    const { caller } = await openConn(t, 'memory', false);
    await within(caller.close({ graceMs: 0 }), 1000, 'close');
    const error = await rejectsWithStatus(caller.ping(), Status.UNAVAILABLE, 'ping after close');
    assert.match(error.message, /the session is closed/);
    assert.equal(error.retrySafe, true);
  });

  void test('ping() during the handshake, then close(): the ping and ready reject UNAVAILABLE; the 17th waiting ping RESOURCE_EXHAUSTED', { timeout: 5000 }, async (t) => {
    // the raw peer never sends its HELLO and never answers a PING
    const { session } = againstRawPeer(t, 'dialer', {}, {}, true);
    const ready = session.ready;
    const pings = Array.from({ length: 16 }, () => session.ping());
    await rejectsWithStatus(session.ping(), Status.RESOURCE_EXHAUSTED, 'the 17th ping');
    const closing = session.close();
    for (const [i, ping] of pings.entries()) await rejectsWithStatus(within(ping, 1000, `ping ${i}`), Status.UNAVAILABLE, `ping ${i} in flight at the close`);
    const readyError = await rejectsWithStatus(within(ready, 1000, 'ready'), Status.UNAVAILABLE, 'ready of a session closed in its handshake');
    assert.match(readyError.message, /closed/);
    await within(closing, 1000, 'close');
  });

  void test("ready of a session that refuses its peer rejects PERMISSION_DENIED (retrying will not mend it) with the reason", { timeout: 5000 }, async (t) => {
    const { session } = againstRawPeer(t, 'dialer', { admit: () => 'not on the list' });
    const error = await rejectsWithStatus(within(session.ready, 1000, 'ready'), Status.PERMISSION_DENIED, 'ready of a refused peer');
    assert.match(error.message, /GW_ERR_REFUSED: not on the list/);
  });

  void test('channel.whenReady() and a waiting call after channel.close(): UNAVAILABLE', { timeout: 5000 }, async (t) => {
    const { server } = await startServer(t);
    const ch = openChannel(t, server.url);
    await within(ch.whenReady(), 2000, 'connected');
    await within(ch.close({ graceMs: 0 }), 1000, 'channel close');
    const error = await rejectsWithStatus(ch.whenReady(), Status.UNAVAILABLE, 'whenReady after close');
    assert.match(error.message, /closed/);
  });

  void test('listen() on an address in use: UNAVAILABLE, with Node\'s error as the cause; a malformed address stays a TypeError', { timeout: 5000 }, async (t) => {
    const { server } = await startServer(t);
    const error = await rejectsWithStatus(listen(server.url), Status.UNAVAILABLE, 'listen on a bound port');
    assert.match(error.message, /cannot listen on/);
    assert.equal((error.cause as NodeJS.ErrnoException).code, 'EADDRINUSE');
    await assert.rejects(listen('http://example.com'), TypeError);
  });

  void test('mesh.start() twice, or after stop(): FAILED_PRECONDITION', { timeout: 5000 }, async () => {
    const mesh = new Mesh({ name: 'a', listen: `unix://${socketPath()}`, log: () => undefined });
    await within(mesh.start(), 2000, 'start');
    await rejectsWithStatus(mesh.start(), Status.FAILED_PRECONDITION, 'a second start()');
    await within(mesh.stop({ graceMs: 0 }), 2000, 'stop');
    const stopped = new Mesh({ name: 'b', log: () => undefined });
    await stopped.stop();
    await rejectsWithStatus(stopped.start(), Status.FAILED_PRECONDITION, 'start() after stop()');
  });

  void test('a bidi send() after end(), or while an earlier send() waits for credit: FAILED_PRECONDITION; the call goes on', { timeout: 5000 }, async (t) => {
    const Sink = defineService('test.ApiErrors.Sink', { take: bidi<Uint8Array, Uint8Array>({ codec: 'raw' }) });
    const impl = serve(Sink, {
      take: async function* (requests: MessageStream<Uint8Array>) {
        let bytes = 0;
        for await (const chunk of requests) bytes += chunk.byteLength;
        yield new Uint8Array([bytes % 256]);
      },
    });
    const { caller } = await openConn(t, 'memory', false, { services: [impl] });
    const call = caller.client(Sink).take();
    const big = call.send(new Uint8Array(200 * 1024)); // past the stream's send queue: waits for credit
    await rejectsWithStatus(call.send(new Uint8Array(1)), Status.FAILED_PRECONDITION, 'a send while one waits');
    await within(big, 2000, 'the big send');
    call.end();
    await rejectsWithStatus(call.send(new Uint8Array(1)), Status.FAILED_PRECONDITION, 'a send after end()');
    const replies: unknown[] = [];
    for await (const reply of call) replies.push(reply);
    assert.equal(replies.length, 1, 'the call finished normally');
  });
});

// ---------------------------------------------------------------- errors that say what to do

const Kinds = defineService('test.ApiErrors.Kinds', {
  one: unary<string, string>(),
  many: serverStream<string, string>(),
  sum: clientStream<string, string>(),
  chat: bidi<string, string>(),
  put: upload<string, string>(),
  get: download<string>(),
});

function kindsService(ran: string[]): ReturnType<typeof serve> {
  return serve(Kinds, {
    one: (text) => (ran.push('one'), text),
    many: async function* (text) {
      ran.push('many');
      yield text;
    },
    sum: async (requests) => {
      ran.push('sum');
      let all = '';
      for await (const text of requests) all += text;
      return all;
    },
    chat: async function* (requests) {
      ran.push('chat');
      for await (const text of requests) yield text;
    },
    put: async (name, body) => {
      ran.push('put');
      for await (const chunk of body) void chunk;
      return name;
    },
    get: async function* () {
      ran.push('get');
      yield new Uint8Array(1);
    },
  });
}

/** One call of each kind with `options`; resolves with each call's outcome (its error, or 'ok'). */
async function everyKind(session: RpcSession, options: CallOptions): Promise<Record<string, unknown>> {
  const client = session.client(Kinds);
  const settle = (p: Promise<unknown>): Promise<unknown> => p.then(() => 'ok', (error: unknown) => error);
  const drain = async (stream: AsyncIterable<unknown>): Promise<void> => {
    for await (const item of stream) void item;
  };
  return {
    one: await settle(client.one('x', options)),
    many: await settle(drain(client.many('x', options))),
    sum: await settle(client.sum(['x'], options)),
    chat: await settle(drain(client.chat(['x'], options))),
    put: await settle(client.put('x', [new Uint8Array(1)], options)),
    get: await settle(drain(client.get('x', options))),
  };
}

void describe('services are what serve() made', () => {
  const Calc = defineService('calc.v1', { add: unary<number, number>() });
  const calc = serve(Calc, { add: (n) => n + 1 });

  // a hand-made { service } used to pass the type check (the handlers field is not in the published .d.ts) and crash
  // in the registry with "Cannot read properties of undefined"; connect() found out only after dialing
  void test('a hand-made { service } object is a TypeError saying to use serve(): listen, connect (before dialing), channel, Mesh, createSession', { timeout: 5000 }, async () => {
    const handMade = [{ service: Calc }] as unknown as ServiceImpl[];
    const useServe = { name: 'TypeError', message: /services\[0\] is an object, not a served service: make it with serve\(Service, handlers\)/ };
    await assert.rejects(listen(`unix://${socketPath()}`, { services: handMade }), useServe);
    // nothing listens at this address: a connect() that dialed first would reject UNAVAILABLE
    await assert.rejects(connect(`unix://${socketPath()}`, { services: handMade }), useServe);
    assert.throws(() => channel(`unix://${socketPath()}`, { services: handMade }), useServe);
    assert.throws(() => new Mesh({ name: 'a', services: handMade, log: () => undefined }), useServe);
    const [transport] = createMemoryPair();
    assert.throws(() => createSession(transport, 'dialer', { services: handMade }), useServe);
  });

  void test('services that are not an array, or that name one service twice: TypeError before dialing', { timeout: 5000 }, async () => {
    const notAnArray = calc as unknown as ServiceImpl[];
    await assert.rejects(connect(`unix://${socketPath()}`, { services: notAnArray }), { name: 'TypeError', message: /services must be an array of serve\(Service, handlers\) results, got an object/ });
    await assert.rejects(connect(`unix://${socketPath()}`, { services: [calc, calc] }), { name: 'TypeError', message: /service calc\.v1 is registered twice/ });
  });
});

void describe('errors say what to do', () => {
  void test("a request over the peer's maxMessageBytes names the option, the size and the limit, and says to raise it on both sides", { timeout: 5000 }, async (t) => {
    const ran: string[] = [];
    const { caller } = await openConn(t, 'memory', false, { services: [kindsService(ran)], callee: { maxMessageBytes: 1024 } });
    const client = caller.client(Kinds);
    const big = 'x'.repeat(4000);
    for (const [what, call] of [
      ['unary', client.one(big)],
      ['clientStream', client.sum([big])],
      ['bidi send', client.chat().send(big)],
    ] as const) {
      const error = await rejectsWithStatus(call, Status.RESOURCE_EXHAUSTED, what);
      assert.match(error.message, /the request of 400\d bytes exceeds the peer's maxMessageBytes of 1024; raise maxMessageBytes on both sides/, what);
    }
    assert.equal((await rejectsWithStatus(client.one(big), Status.RESOURCE_EXHAUSTED)).retrySafe, true, 'nothing was sent');
    assert.deepEqual(ran.filter((k) => k === 'one'), [], 'no unary handler ran');
  });

  void test("a response over the caller's maxMessageBytes names the option, the size and the limit, and says to raise it on both sides", { timeout: 5000 }, async (t) => {
    const ran: string[] = [];
    const { caller } = await openConn(t, 'memory', false, { services: [kindsService(ran)], caller: { maxMessageBytes: 1024 } });
    // the request itself (1.5 KB) is within the callee's default limit; the echo back is over the caller's
    const error = await rejectsWithStatus(caller.client(Kinds).one('y'.repeat(1500)), Status.RESOURCE_EXHAUSTED, 'unary response');
    assert.match(error.message, /the response of 15\d\d bytes exceeds the caller's maxMessageBytes of 1024; raise maxMessageBytes on both sides/);
  });

  void test('an invalid request metadata key or value is INVALID_ARGUMENT naming the key and the rule, for every kind; retrySafe; no handler runs', { timeout: 10_000 }, async (t) => {
    const ran: string[] = [];
    const { caller } = await openConn(t, 'memory', false, { services: [kindsService(ran)] });
    const upper = await everyKind(caller, { metadata: { 'X-Trace-Id': 'abc' } });
    for (const [kind, error] of Object.entries(upper)) {
      const e = await rejectsWithStatus(Promise.reject(error), Status.INVALID_ARGUMENT, `${kind} with an upper-case key`);
      assert.match(e.message, /metadata key "X-Trace-Id" is invalid: use 1-64 characters of a-z 0-9 _ \. - starting with a letter or digit \(keys are lower case: "x-trace-id"\)/, kind);
      assert.equal(e.retrySafe, true, `${kind}: nothing was sent`);
    }
    const value = await everyKind(caller, { metadata: { 'x-count': 3 as unknown as string } });
    for (const [kind, error] of Object.entries(value)) {
      const e = await rejectsWithStatus(Promise.reject(error), Status.INVALID_ARGUMENT, `${kind} with a number value`);
      assert.match(e.message, /metadata value for "x-count" must be a string or Uint8Array/, kind);
    }
    assert.deepEqual(ran, [], 'no handler ran');
    assert.deepEqual(Object.values(await everyKind(caller, { metadata: { 'x-trace-id': 'abc' } })), ['ok', 'ok', 'ok', 'ok', 'ok', 'ok'], 'a valid key works');
  });

  void test('a key an interceptor adds is checked the same way, and over a channel', { timeout: 5000 }, async (t) => {
    const addBadKey: ClientInterceptor = (next) => (call) => next({ ...call, metadata: { ...call.metadata, Tenant: 'a' } });
    const { server } = await startServer(t, { services: [kindsService([])] });
    const ch = openChannel(t, server.url, { clientInterceptors: [addBadKey] });
    const error = await rejectsWithStatus(ch.client(Kinds).one('x', { waitForReady: true, timeoutMs: 2000 }), Status.INVALID_ARGUMENT, 'over a channel');
    assert.match(error.message, /metadata key "Tenant" is invalid/);
  });

  void test('a request the codec refuses (json: a Map; raw: a string) is INVALID_ARGUMENT naming the codec, not INTERNAL', { timeout: 5000 }, async (t) => {
    const Codecs = defineService('test.ApiErrors.Codecs', {
      json: unary<unknown, unknown>({ codec: 'json' }),
      raw: unary<Uint8Array, Uint8Array>({ codec: 'raw' }),
    });
    const impl = serve(Codecs, { json: (v) => v, raw: (v) => v });
    const { caller } = await openConn(t, 'memory', false, { services: [impl] });
    const client = caller.client(Codecs);
    const json = await rejectsWithStatus(client.json({ tags: new Map([['a', 1]]) }), Status.INVALID_ARGUMENT, 'json with a Map');
    assert.match(json.message, /the request cannot be encoded with codec "json": codec "json" cannot carry a Map at \.tags/);
    assert.equal(json.retrySafe, true);
    await rejectsWithStatus(client.json({ n: 1n }), Status.INVALID_ARGUMENT, 'json with a bigint');
    const raw = await rejectsWithStatus((client.raw as (v: unknown) => Promise<unknown>)('text'), Status.INVALID_ARGUMENT, 'raw with a string');
    assert.match(raw.message, /codec "raw"/);
  });

  void test('a codec mismatch between the two sides says so: the decode failure names the codec and points at the shared service definition', { timeout: 5000 }, async (t) => {
    // one service name, two definitions that disagree about the codec (as when one side was changed and not the other)
    const Served = defineService('test.ApiErrors.Mismatch', {
      ask: unary<unknown, unknown>({ codec: 'json' }),
      answer: unary<Uint8Array, Uint8Array>({ codec: 'raw' }),
    });
    const Called = defineService('test.ApiErrors.Mismatch', {
      ask: unary<unknown, unknown>(), // msgpack
      answer: unary<unknown, unknown>({ codec: 'json' }),
    });
    const impl = serve(Served, { ask: (v) => v, answer: () => Uint8Array.of(0xff, 0xfe) });
    const { caller } = await openConn(t, 'memory', false, { services: [impl] });
    const client = caller.client(Called);

    const request = await rejectsWithStatus(client.ask({ a: 1 }), Status.INTERNAL, 'msgpack request, json handler');
    assert.match(request.message, /could not decode the request with codec "json" \(.+\); both sides must use the same codec for this method: define the service once and use that definition on both sides/);
    const response = await rejectsWithStatus(client.answer('hi'), Status.INTERNAL, 'raw response, json caller');
    assert.match(response.message, /could not decode the response with codec "json" \(.+\); both sides must use the same codec for this method/);
  });
});
