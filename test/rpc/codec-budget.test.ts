/**
 * The msgpack codec's decode budget (src/rpc/msgpack-budget.ts), decoded directly: every T-F4 bomb fails fast with the
 * status and message its call would get, limits hold at their edges and weigh what they say, what the codec refuses
 * to decode it refuses to encode (and what it decodes it can encode, objects past 65 535 keys included), and a
 * property test with a fixed seed: values within the budget round-trip, random bytes only ever raise typed errors.
 * The same bombs sent to a listen() server: dos-msgpack.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import fc from 'fast-check';

import { createMsgpackCodec, defineService, msgpackCodec, serve, Status, unary, type RpcError } from '../../src/index.js';
import { decodeFailure } from '../../src/rpc/codec.js';
import { CodecLimitError } from '../../src/rpc/msgpack-budget.js';
import { memoryRpcPair } from '../fixtures/connections.js';
import { allBombs, constructorPrototypeKeys, manyKeysMap } from '../fixtures/msgpack-bombs.js';
import { withinBudget } from '../fuzz/harness.js';
import { rejectsWithStatus } from '../helpers.js';

const prototypeNames = (): string[] => Object.getOwnPropertyNames(Object.prototype).sort();
const PROTOTYPE_NAMES = prototypeNames();

function assertPrototypeUntouched(what: string): void {
  assert.deepEqual(prototypeNames(), PROTOTYPE_NAMES, `${what}: Object.prototype gained or lost a property`);
  assert.equal(({} as Record<string, unknown>).polluted, undefined, `${what}: Object.prototype.polluted is set`);
}

/** What decoding `bytes` threw, and the call error it becomes. */
function decodeError(bytes: Uint8Array, codec = msgpackCodec): RpcError {
  let thrown: unknown;
  try {
    codec.decode(bytes);
  } catch (error) {
    thrown = error;
  }
  assert.ok(thrown instanceof Error, `expected the decode to throw an Error, got ${String(thrown)}`);
  return decodeFailure(codec, 'the request', thrown);
}

const u32 = (n: number): number[] => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
/** An array32 of `count` copies of `item`. */
function arrayOf(count: number, item: number[]): Uint8Array {
  const bytes = new Uint8Array(5 + count * item.length);
  bytes.set([0xdd, ...u32(count)]);
  for (let i = 0, at = 5; i < count; i++, at += item.length) bytes.set(item, at);
  return bytes;
}
/** `levels` arrays of one item nested, around a nil (or an empty array when `emptyInside`). */
function nested(levels: number, emptyInside = false): Uint8Array {
  const bytes = new Uint8Array(levels + 1).fill(0x91);
  bytes[levels] = emptyInside ? 0x90 : 0xc0;
  return bytes;
}
const objectOfKeys = (count: number): Record<string, number> => Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, i]));

void test('T-F4 msgpack bombs, decoded: each fails at once with its status and a message naming the limit or the cause; Object.prototype untouched', () => {
  for (const bomb of allBombs()) {
    // refused by the pass before msgpackr allocates: at most a scan of the budget, never a decode of 4 MiB. In CPU
    // time, the fastest of up to 3 tries, as the fuzz targets: wall time counted what other processes ran
    const error = withinBudget(() => decodeError(bomb.bytes), `${bomb.name}: refusing it`);
    assert.equal(error.code, bomb.status, `${bomb.name}: ${error.message}`);
    assert.match(error.message, bomb.message, bomb.name);
    assertPrototypeUntouched(bomb.name);
  }
  const limit = decodeError(manyKeysMap().bytes);
  assert.match(limit.message, /^RESOURCE_EXHAUSTED: the request holds more than the codec's maxElements of 524288/);
  assert.match(limit.message, /createMsgpackCodec/, 'says how to raise it');
  assert.ok(limit.cause instanceof CodecLimitError);
});

void test('T-F4 malformed messages are refused INTERNAL with their cause; the extension forms gridwire writes are accepted', () => {
  const hex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text.replace(/ /g, ''), 'hex'));
  const refused: Array<[string, RegExp]> = [
    ['', /ends in the middle of a value/],
    ['92 01', /claims 2 values but only 1 bytes are left/],
    ['d4', /ends in the middle of a value/],
    ['c0 c0', /1 bytes follow the end of the value/],
    ['c1', /0xc1 is never used/],
    ['c4 05 01 02', /claims 5 bytes but only 2 are left/],
    ['da ff', /ends in the middle/],
    ['de 00 02 a1 61 01', /claims 4 values but only 3 bytes are left/],
    ['d4 6d 01 90', /malformed Map/],
    ['d4 6d 00 91 01', /malformed Map/],
    ['d4 73 00 c0', /malformed Set/],
    ['d4 73 00 d4 73 00 90', /malformed Set/],
    ['c7 01 6d 00', /extension type 0x6d of 1 bytes is not one gridwire writes/],
    ['d5 ff 00 00', /extension type 0xff of 2 bytes/],
    ['c7 00 42', /extension type 0x42 of 0 bytes/],
    ['d6 69 00 00 00 01 c0', /extension type 0x69/],
    ['d4 62 00', /extension type 0x62/],
    ['81 d9 09 5f 5f 70 72 6f 74 6f 5f 5f 01', /the key "__proto__"/],
  ];
  for (const [bytes, message] of refused) {
    const error = decodeError(hex(bytes));
    assert.equal(error.code, Status.INTERNAL, `${bytes}: ${error.message}`);
    assert.match(error.message, message, bytes);
  }
  const accepted: Array<[string, unknown]> = [
    ['d4 00 00', undefined],
    ['d6 ff 00 00 00 01', new Date(1_000)],
    ['d7 ff 00 00 00 00 00 00 00 02', new Date(2_000)],
    ['c7 0c ff 00 00 00 00 00 00 00 00 00 00 00 03', new Date(3_000)],
    ['c7 09 42 01 00 00 00 00 00 00 00 00', 2n ** 64n],
    ['d4 6d 00 92 01 02', new Map([[1, 2]])],
    ['d4 73 00 dc 00 01 07', new Set([7])],
    ['82 a9 5f 5f 70 72 6f 74 6f 5f 78 01 a8 5f 5f 70 72 6f 74 6f 5f 02', { __proto_x: 1, __proto_: 2 }],
    ['91 a9 5f 5f 70 72 6f 74 6f 5f 5f', ['__proto__']], // a value, not a key
  ];
  for (const [bytes, value] of accepted) assert.deepStrictEqual(msgpackCodec.decode(hex(bytes)), value, bytes);
  assert.ok(Number.isNaN((msgpackCodec.decode(hex('d4 ff ff')) as Date).getTime()), 'an invalid Date');
});

void test('T-F4 map keys "constructor" and "prototype" decode as plain own keys and touch no prototype; "__proto__" is refused both ways', () => {
  const value = msgpackCodec.decode(constructorPrototypeKeys()) as Record<string, Record<string, unknown>>;
  assert.equal(Object.getPrototypeOf(value), Object.prototype);
  assert.ok(Object.hasOwn(value, 'constructor') && Object.hasOwn(value, 'prototype'));
  assert.deepEqual(value.constructor, { prototype: { polluted: true } });
  assertPrototypeUntouched('constructor/prototype keys');
  assert.deepStrictEqual(msgpackCodec.decode(msgpackCodec.encode(value)), value, 'they round-trip');
  // an own "__proto__" key (JSON.parse makes them) would come back renamed: the encoder refuses it too
  const withProto = JSON.parse('{"a":1,"__proto__":{"polluted":true}}') as object;
  assert.throws(() => msgpackCodec.encode(withProto), /the key "__proto__"/);
  assert.throws(() => msgpackCodec.encode([{ x: withProto }]), /the key "__proto__"/);
  assertPrototypeUntouched('__proto__ key');
});

void test('T-F4 the element budget holds at its edge and weighs a map key 3: 524 288 elements pass, one more fails', () => {
  // an array of n nils is n + 1 elements
  assert.equal((msgpackCodec.decode(arrayOf(524_287, [0xc0])) as unknown[]).length, 524_287);
  assert.equal(decodeError(arrayOf(524_288, [0xc0])).code, Status.RESOURCE_EXHAUSTED);
  // an object of n keys is 1 + 4n elements
  assert.equal(Object.keys(msgpackCodec.decode(msgpackCodec.encode(objectOfKeys(131_071))) as object).length, 131_071);
  assert.throws(() => msgpackCodec.encode(objectOfKeys(131_072)), CodecLimitError, 'the encoder refuses what the decoder would');
  // a bigint beyond 64 bits: 1 more per 8 of its bytes (0x42 extension); msgpackr writes 2^(8k) in k + 1 bytes
  const big = 2n ** (8n * 8_000n);
  assert.equal(msgpackCodec.decode(msgpackCodec.encode(big)), big);
  assert.throws(() => msgpackCodec.encode(Array.from({ length: 560 }, () => big)), CodecLimitError);
});

void test('T-F4 the depth budget: 64 nested arrays or maps pass, a 65th fails, even an empty one', () => {
  assert.ok(Array.isArray(msgpackCodec.decode(nested(64))));
  assert.ok(Array.isArray(msgpackCodec.decode(nested(63, true))), '63 levels around an empty array: 64 in all');
  for (const bytes of [nested(65), nested(64, true)]) {
    const error = decodeError(bytes);
    assert.equal(error.code, Status.RESOURCE_EXHAUSTED);
    assert.match(error.message, /deeper than 64 levels \(the codec's maxDepth\)/);
  }
  // maps count as levels too, and a Map or Set as the array it is written as
  let value: unknown = 1;
  for (let i = 0; i < 65; i++) value = i % 3 === 0 ? { v: value } : i % 3 === 1 ? new Map([[i, value]]) : new Set([value]);
  assert.throws(() => msgpackCodec.encode(value), /maxDepth/);
});

void test('T-F4 legitimate payloads pass the default budget: 100 000 numbers, an object of 5 000 keys, 5 000 records of 5 fields, 4 MiB of bytes', () => {
  const values: unknown[] = [
    Array.from({ length: 100_000 }, (_, i) => i * 1.5),
    objectOfKeys(5_000),
    Array.from({ length: 5_000 }, (_, i) => ({ id: i, name: `user ${i}`, score: i / 3, active: i % 2 === 0, tags: 'x' })),
    { data: new Uint8Array(4 * 1024 * 1024 - 64) },
    { text: 'é'.repeat(1_000_000) },
  ];
  for (const value of values) assert.deepStrictEqual(normalize(msgpackCodec.decode(msgpackCodec.encode(value))), value);
});

void test('T-F4 objects of more than 65 535 keys encode (as map32) and round-trip, with a budget raised for them', () => {
  const codec = createMsgpackCodec({ maxElements: 1_000_000 });
  for (const count of [65_535, 65_536, 100_000]) {
    const value = objectOfKeys(count);
    const bytes = codec.encode(value);
    assert.equal(bytes[0], count < 65_536 ? 0xde : 0xdf, 'map16 up to 65 535 keys, map32 beyond');
    const back = codec.decode(bytes) as Record<string, number>;
    assert.equal(Object.keys(back).length, count);
    assert.deepStrictEqual(back, value);
  }
  // nested inside arrays and Maps too, and a small object keeps its bytes (map16, one pass)
  const inside = [1, { big: objectOfKeys(70_000) }, new Map([['m', objectOfKeys(70_000)]])];
  assert.deepStrictEqual(codec.decode(codec.encode(inside)), inside);
  assert.deepEqual([...msgpackCodec.encode({ a: 1 })], [0xde, 0x00, 0x01, 0xa1, 0x61, 0x01]);
});

void test('T-F4 createMsgpackCodec: a raised budget takes the 699k-key map; options out of range are RangeErrors naming the option', () => {
  const roomy = createMsgpackCodec({ maxElements: 3_000_000 });
  assert.equal(Object.keys(roomy.decode(manyKeysMap().bytes) as object).length, 699_049);
  const shallow = createMsgpackCodec({ maxDepth: 2 });
  assert.deepEqual(shallow.decode(shallow.encode([[1]])), [[1]]);
  assert.throws(() => shallow.encode([[[1]]]), /deeper than 2 levels/);
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ maxElements: 0 }, /maxElements must be an integer from 1 to 4294967295, got 0/],
    [{ maxElements: 1.5 }, /maxElements/],
    [{ maxElements: Infinity }, /maxElements/],
    [{ maxElements: '10' }, /maxElements must be an integer from 1 to 4294967295, got "10"/],
    [{ maxDepth: -1 }, /maxDepth must be an integer from 0 to 256, got -1/],
    [{ maxDepth: 257 }, /maxDepth/],
    [{ maxDepth: NaN }, /maxDepth/],
  ];
  for (const [options, message] of bad) assert.throws(() => createMsgpackCodec(options), (error: unknown) => error instanceof RangeError && message.test(error.message));
  // the largest depth, in nested Maps and Sets (three of msgpackr's frames a level), encodes and decodes
  const deepest = createMsgpackCodec({ maxDepth: 256, maxElements: 10_000 });
  let value: unknown = 1;
  for (let i = 0; i < 256; i++) value = i % 2 === 0 ? new Map([[i, value]]) : new Set([value]);
  assert.deepStrictEqual(deepest.decode(deepest.encode(value)), value);
  assert.throws(() => deepest.encode(new Set([value])), /deeper than 256 levels/);
});

const Budget = defineService('test.codec.Budget', {
  echo: unary<unknown, unknown>(),
  big: unary<number, unknown>(),
});

void test('T-F4 over the budget on the sending side: a request fails locally RESOURCE_EXHAUSTED (retry-safe, nothing sent), a response fails the call RESOURCE_EXHAUSTED', async (t) => {
  let handled = 0;
  const impl = serve(Budget, {
    echo: (value) => (handled++, value),
    big: (count) => objectOfKeys(count),
  });
  const { caller } = await memoryRpcPair(t, {}, { services: [impl] });
  const client = caller.client(Budget);
  const request = await rejectsWithStatus(client.echo(objectOfKeys(140_000)), Status.RESOURCE_EXHAUSTED, 'request over budget');
  assert.match(request.message, /the request holds more than the codec's maxElements of 524288/);
  assert.equal(request.retrySafe, true);
  assert.equal(handled, 0, 'the handler never ran');
  const response = await rejectsWithStatus(client.big(140_000), Status.RESOURCE_EXHAUSTED, 'response over budget');
  assert.match(response.message, /the response holds more than the codec's maxElements of 524288/);
  // the connection is fine
  assert.deepEqual(await client.echo({ ok: 1 }), { ok: 1 });
  assert.equal(Object.keys((await client.big(1_000)) as object).length, 1_000);
});

void test('T-F4 decoded values never view the bytes they came from', () => {
  const bytes = msgpackCodec.encode({ data: new Uint8Array([1, 2, 3]) });
  const value = msgpackCodec.decode(bytes) as { data: Uint8Array };
  bytes.fill(0);
  assert.deepEqual([...value.data], [1, 2, 3]);
  assert.notEqual(value.data.buffer, bytes.buffer);
});

/** Buffers (how a byte string decodes) as plain Uint8Arrays, so values compare with what was sent. */
function normalize(value: unknown): unknown {
  if (value instanceof Uint8Array) return new Uint8Array(value);
  if (Array.isArray(value)) return value.map(normalize);
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [normalize(k), normalize(v)]));
  if (value instanceof Set) return new Set([...value].map(normalize));
  if (typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalize(v)]));
  }
  return value;
}

const RUNS = { seed: 20261210, numRuns: 1_500 } as const;

/** What the msgpack codec carries exactly (-0 is written as 0; strings are well-formed Unicode; no "__proto__" key). */
const { carried } = fc.letrec((tie) => ({
  carried: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(null, undefined, true, false),
    fc.integer(),
    fc.double({ noDefaultInfinity: false }).filter((n) => !Object.is(n, -0)),
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.bigInt(),
    fc.uint8Array({ maxLength: 64 }),
    fc.date({ noInvalidDate: true }), // an invalid Date round-trips too, but deepStrictEqual finds NaN unequal to NaN
    fc.array(tie('carried'), { maxLength: 6 }),
    fc.dictionary(fc.string({ unit: 'grapheme', maxLength: 12 }).filter((k) => k !== '__proto__'), tie('carried'), { maxKeys: 6, noNullPrototype: true }),
    fc.array(fc.tuple(tie('carried'), tie('carried')), { maxLength: 4 }).map((entries) => new Map(entries)),
    fc.array(tie('carried'), { maxLength: 4 }).map((items) => new Set(items)),
  ),
}));

void test('T-F4 property (fixed seed): a value within the budget decodes to itself, and re-encoding the decoded value gives the same bytes', () => {
  fc.assert(
    fc.property(carried, (value) => {
      const bytes = msgpackCodec.encode(value);
      const back = msgpackCodec.decode(bytes);
      assert.deepStrictEqual(normalize(back), normalize(value));
      assert.deepEqual(Buffer.from(msgpackCodec.encode(back)), Buffer.from(bytes));
    }),
    RUNS,
  );
});

void test('T-F4 property (fixed seed): random and mutated bytes into decode raise only Errors that become RESOURCE_EXHAUSTED or INTERNAL, fast, touching no prototype', () => {
  const mutated = fc
    .tuple(carried, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
    .map(([value, edits]) => {
      const bytes = Uint8Array.from(msgpackCodec.encode(value));
      for (const [at, byte] of edits) bytes[at % bytes.length] = byte;
      return bytes;
    });
  const hostile = fc.oneof(fc.uint8Array({ maxLength: 300 }), mutated);
  fc.assert(
    fc.property(hostile, (bytes) => {
      // fast: within 50 ms of CPU time, the fastest of up to 3 tries (test/fuzz/harness.ts). In wall time, 5 000
      // inputs in a row on a loaded 2-core machine met a time slice of another process's over 50 ms
      const thrown = withinBudget(() => {
        try {
          msgpackCodec.decode(bytes);
          return undefined;
        } catch (error) {
          return { error };
        }
      }, 'one input');
      if (thrown !== undefined) {
        const { error } = thrown;
        assert.ok(error instanceof Error, `threw a non-Error: ${String(error)}`);
        const failure = decodeFailure(msgpackCodec, 'the request', error);
        assert.ok(failure.code === Status.RESOURCE_EXHAUSTED || failure.code === Status.INTERNAL, failure.message);
      }
      assertPrototypeUntouched('hostile bytes');
    }),
    { ...RUNS, numRuns: 5_000 },
  );
});
