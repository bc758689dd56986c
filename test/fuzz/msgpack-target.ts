/**
 * Fuzz target `msgpack` (reliability.md T-F1, T-F4): bytes into `msgpackCodec.decode` (src/rpc/codec.ts), the path
 * every request and response of the default codec takes. Properties:
 * - it returns, or throws an Error (the rpc layer turns that into a status); never anything else, never a hang: each
 *   decode < 50 ms;
 * - Object.prototype is untouched, whatever keys the input holds.
 * Inputs stay small (a few KiB): the decode budget of the codec is tested where it is defined; here the point is the
 * shape of the bytes (headers, lengths, nesting, extension types), not their amount. The corpus form is the bytes.
 */
import assert from 'node:assert/strict';

import fc from 'fast-check';

import { msgpackCodec } from '../../src/rpc/codec.js';
import { concat, describeThrown, hex, maybeMutated, withinBudget, type FuzzTarget } from './harness.js';

function check(input: Uint8Array): void {
  const prototypeBefore = Object.getOwnPropertyNames(Object.prototype).join();
  withinBudget(() => {
    try {
      msgpackCodec.decode(input);
    } catch (error) {
      if (!(error instanceof Error)) assert.fail(`msgpackCodec.decode threw ${describeThrown(error)}; only Errors may be thrown`);
    }
  }, `msgpackCodec.decode on ${input.length} bytes`);
  assert.equal(Object.getOwnPropertyNames(Object.prototype).join(), prototypeBefore, 'msgpackCodec.decode changed Object.prototype');
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined, 'msgpackCodec.decode polluted Object.prototype');
}

// ---------------------------------------------------------------- inputs

/** Values of every kind the codec carries: what valid messages look like before they are mutated. */
const valueArb: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(null, true, false, 0, -1, 2 ** 53, -0, Number.NaN, Infinity),
    fc.integer(),
    fc.double(),
    fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
    fc.string({ maxLength: 20 }),
    fc.uint8Array({ maxLength: 20 }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('constructor', 'prototype')), tie('value'), { maxKeys: 4 }),
    fc.array(fc.tuple(tie('value'), tie('value')), { maxLength: 3 }).map((entries) => new Map(entries)),
    fc.array(tie('value'), { maxLength: 3 }).map((items) => new Set(items)),
  ),
})).value;

// no `__proto__` key here: the codec refuses to write one (the corpus and the token grammar send it as bytes)
const validArb: fc.Arbitrary<Uint8Array> = valueArb.map((value) => Uint8Array.from(msgpackCodec.encode(value)));

const u8 = (n: number): number[] => [n & 0xff];
const u16 = (n: number): number[] => [(n >>> 8) & 0xff, n & 0xff];
const u32 = (n: number): number[] => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];

/** A count or length: small, at a boundary, or far more than the bytes that follow. */
const countArb = fc.oneof(fc.integer({ min: 0, max: 20 }), fc.constantFrom(15, 16, 31, 32, 255, 256, 65_535, 65_536, 0x7fff_ffff, 0xffff_ffff));

/** One msgpack token: a header with its count or length, an extension header with its type, or a scalar. */
const tokenArb: fc.Arbitrary<number[]> = fc.oneof(
  countArb.map((n) => [0x90 | (n & 0x0f)]), // fixarray
  countArb.map((n) => [0x80 | (n & 0x0f)]), // fixmap
  countArb.map((n) => [0xdc, ...u16(n)]), // array16
  countArb.map((n) => [0xdd, ...u32(n)]), // array32
  countArb.map((n) => [0xde, ...u16(n)]), // map16
  countArb.map((n) => [0xdf, ...u32(n)]), // map32
  countArb.map((n) => [0xa0 | (n & 0x1f)]), // fixstr
  countArb.map((n) => [0xd9, ...u8(n)]), // str8
  countArb.map((n) => [0xdb, ...u32(n)]), // str32
  countArb.map((n) => [0xc4, ...u8(n)]), // bin8
  countArb.map((n) => [0xc6, ...u32(n)]), // bin32
  // extensions: fixext 1/2/4/8/16 and ext8/32, with the types the codec knows (Map 0x6d, Set 0x73, bigint 0x42,
  // timestamp -1) and any other
  fc
    .tuple(fc.constantFrom(0xd4, 0xd5, 0xd6, 0xd7, 0xd8), fc.oneof(fc.constantFrom(0x6d, 0x73, 0x42, 0xff), fc.integer({ min: 0, max: 255 })))
    .map(([head, type]) => [head, type]),
  fc
    .tuple(fc.constantFrom(0xc7, 0xc9), countArb, fc.oneof(fc.constantFrom(0x6d, 0x73, 0x42, 0xff), fc.integer({ min: 0, max: 255 })))
    .map(([head, n, type]) => (head === 0xc7 ? [head, ...u8(n), type] : [head, ...u32(n), type])),
  fc.constantFrom<number[]>([0xc0], [0xc2], [0xc3], [0xc1], [0xcc, 0xff], [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], [0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0]),
  fc.constantFrom(..."__proto__ constructor prototype polluted".split(' ')).map((s) => [0xa0 | s.length, ...Buffer.from(s)]),
  fc.integer({ min: 0, max: 255 }).map((b) => [b]),
);

/** Tokens strung together (up to a few KiB), sometimes one token repeated: deep nesting, long runs of headers. */
const tokensArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.array(tokenArb, { minLength: 1, maxLength: 40 }).map((tokens) => Uint8Array.from(tokens.flat())),
  fc
    .tuple(tokenArb, fc.integer({ min: 1, max: 2000 }), fc.array(tokenArb, { maxLength: 4 }))
    .map(([token, times, tail]) => concat([Uint8Array.from(Array.from({ length: times }, () => token).flat().slice(0, 4096)), Uint8Array.from(tail.flat())])),
);

export const msgpackTarget: FuzzTarget = {
  name: 'msgpack',
  inputs: fc.oneof(fc.uint8Array({ maxLength: 512 }), tokensArb, maybeMutated(validArb), maybeMutated(tokensArb)),
  check,
  describe: (input) => `${input.length} bytes into msgpackCodec.decode: ${hex(input)}`,
};
