/**
 * What the message codecs do with the JavaScript values MessagePack and JSON have no type for. The default msgpack
 * codec used to turn a Map into an object (non-string keys became strings), a Set into an array and a bigint into a
 * rounded number, silently; now all three round-trip exactly, nested anywhere, while plain values keep their plain
 * MessagePack bytes. The json codec cannot carry them: it refuses at send time, naming the codec and where the value is.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Packr } from 'msgpackr';
import { defineService, msgpackCodec, RpcError, serve, Status, unary } from '../../src/index.js';
import { openConn } from '../helpers.js';

const Echo = defineService('codec.types.v1', {
  echo: unary<unknown, unknown>(),
  jsonEcho: unary<unknown, unknown>({ codec: 'json' }),
  jsonReply: unary<string, unknown>({ codec: 'json' }),
});

async function openEcho(t: Parameters<typeof openConn>[0]): Promise<{ client: ReturnType<typeof clientOf>; received: unknown[] }> {
  const received: unknown[] = [];
  const impl = serve(Echo, {
    echo: (value) => (received.push(value), value),
    jsonEcho: (value) => (received.push(value), value),
    jsonReply: (what) => (what === 'map' ? new Map([[1, 'one']]) : what === 'set' ? new Set([1]) : { n: 10n ** 20n }),
  });
  const conn = await openConn(t, 'memory', false, { services: [impl] });
  return { client: clientOf(conn.caller), received };
}
const clientOf = (session: { client: (s: typeof Echo) => unknown }) => session.client(Echo) as { echo(v: unknown): Promise<unknown>; jsonEcho(v: unknown): Promise<unknown>; jsonReply(v: string): Promise<unknown> };

const OBJECT_KEY = { id: 7 };
/** Every kind of value the codec has to keep apart, nested in each other. */
function tricky(): Record<string, unknown> {
  return {
    map: new Map<unknown, unknown>([
      [1, 'number key'],
      ['1', 'string key'],
      [OBJECT_KEY, 'object key'],
      [2n ** 70n, 'bigint key'],
      [true, new Map([['inner', new Set([1, 2])]])],
    ]),
    set: new Set<unknown>(['a', 1, 2n ** 60n, new Map([[1, 2]]), [new Set()]]),
    big: 2n ** 53n + 1n,
    huge: -(2n ** 100n) - 3n,
    small: 5n,
    uint64: 2n ** 64n - 1n,
    list: [new Map(), new Set(['x']), { deep: new Map([[null, [1n]]]) }],
    emptyMap: new Map(),
    emptySet: new Set(),
  };
}

void test('msgpack: Map (non-string keys), Set and bigint beyond 2^53 round-trip exactly, nested, both ways over a session', async (t) => {
  const { client, received } = await openEcho(t);
  const sent = tricky();
  const reply = await client.echo(sent);
  assert.deepStrictEqual(received[0], tricky(), 'what the handler received');
  assert.deepStrictEqual(reply, tricky(), 'what the caller got back');
  const r = reply as Record<string, unknown>;
  assert.ok(r.map instanceof Map && r.set instanceof Set, 'a Map stays a Map, a Set a Set');
  assert.equal(typeof r.small, 'bigint', 'even a small bigint stays a bigint');
  assert.equal(r.big, 2n ** 53n + 1n, 'no rounding beyond 2^53');
  // a top-level Map, Set and bigint too
  assert.deepStrictEqual(await client.echo(new Map([[1n, 1]])), new Map([[1n, 1]]));
  assert.deepStrictEqual(await client.echo(new Set([new Set([1])])), new Set([new Set([1])]));
  assert.equal(await client.echo(-(2n ** 63n)), -(2n ** 63n));
});

void test('msgpack: plain objects, arrays and numbers decode as before: plain objects (not Maps), numbers (not bigints)', async (t) => {
  const { client, received } = await openEcho(t);
  const plain = { a: 1, big: 2 ** 60, neg: -(2 ** 40), f: 1.5, s: 'x', nested: { b: [1, { c: null }], t: true }, list: [{}, []] };
  const reply = (await client.echo(plain)) as typeof plain;
  assert.deepStrictEqual(reply, plain);
  assert.deepStrictEqual(received[0], plain);
  assert.equal(Object.getPrototypeOf(reply), Object.prototype, 'a plain object, not a Map');
  assert.equal(Object.getPrototypeOf(reply.nested), Object.prototype);
  assert.equal(typeof reply.big, 'number', 'a large number stays a number');
});

void test('msgpack: a value without Map, Set or bigint encodes to the same plain MessagePack bytes as before (no msgpackr extensions)', () => {
  const plainPackr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });
  const values: unknown[] = [
    { a: 1, b: [1, 2, { c: 'x' }], bytes: new Uint8Array([9, 8, 7]), f: 0.25, n: null, t: true },
    [1, -1, 2 ** 32, 2 ** 60, 'str'],
    new Uint8Array(300),
    'just a string',
  ];
  for (const value of values) assert.deepEqual(Buffer.from(msgpackCodec.encode(value)), Buffer.from(plainPackr.pack(value)));
  // and a Map, Set or bigint is no longer written as a plain map, array or number
  assert.notDeepEqual(Buffer.from(msgpackCodec.encode(new Map([['a', 1]]))), Buffer.from(plainPackr.pack({ a: 1 })));
  assert.notDeepEqual(Buffer.from(msgpackCodec.encode(new Set([1]))), Buffer.from(plainPackr.pack([1])));
});

void test('json: a Map, Set or bigint in a request is refused at send time, naming the codec and where it is; the handler never runs', async (t) => {
  const { client, received } = await openEcho(t);
  const cases: Array<[unknown, RegExp]> = [
    [{ files: [1, { tags: new Map([['a', 1]]) }] }, /codec "json" cannot carry a Map at \.files\[1\]\.tags/],
    [{ ids: new Set([1]) }, /codec "json" cannot carry a Set at \.ids/],
    [{ size: 2n ** 60n }, /codec "json" cannot carry a bigint at \.size/],
    [new Map(), /codec "json" cannot carry a Map at the top level/],
  ];
  for (const [value, message] of cases) {
    const error = await client.jsonEcho(value).then(
      () => assert.fail(`sent ${String(value)} over json`),
      (error: unknown) => error,
    );
    assert.ok(error instanceof RpcError, String(error));
    assert.match(error.message, message);
    assert.ok(error.cause instanceof TypeError, 'the codec throws a TypeError');
    assert.equal(error.retrySafe, true, 'nothing was sent');
  }
  assert.deepEqual(received, [], 'no request reached the handler');
  // plain JSON values still pass
  assert.deepStrictEqual(await client.jsonEcho({ a: [1, 'x', null, { b: true }] }), { a: [1, 'x', null, { b: true }] });
});

void test('json: a handler returning a Map, Set or bigint fails the call INTERNAL naming the codec, instead of sending {} or a number', async (t) => {
  const { client } = await openEcho(t);
  for (const [what, type] of [['map', 'Map'], ['set', 'Set'], ['bigint', 'bigint']]) {
    const error = await client.jsonReply(what!).then(
      (reply) => assert.fail(`got ${JSON.stringify(reply)}`),
      (error: unknown) => error,
    );
    assert.ok(error instanceof RpcError);
    assert.equal(error.code, Status.INTERNAL);
    assert.match(error.message, new RegExp(`codec "json" cannot carry a ${type}`));
  }
});

void test('msgpack: a malformed Map or Set extension from a peer fails to decode with a clear error, and the next message decodes', () => {
  assert.throws(() => msgpackCodec.decode(Uint8Array.of(0xd4, 0x6d, 0x00, 0x01)), /malformed Map/); // not an array
  assert.throws(() => msgpackCodec.decode(Uint8Array.of(0xd4, 0x6d, 0x00, 0x91, 0x01)), /malformed Map/); // odd length
  assert.throws(() => msgpackCodec.decode(Uint8Array.of(0xd4, 0x73, 0x00, 0xc0)), /malformed Set/); // nil
  assert.throws(() => msgpackCodec.decode(Uint8Array.of(0xc7, 0x01, 0x6d, 0x00))); // the Map type in another ext form
  assert.deepStrictEqual(msgpackCodec.decode(msgpackCodec.encode({ m: new Map([[1, 2]]) })), { m: new Map([[1, 2]]) });
});
