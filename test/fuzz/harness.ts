/**
 * What every fuzz target shares (test/fuzz/*-target.ts): the FuzzTarget shape, byte mutations, a seeded PRNG for
 * cut points, the time bound of one input, and the check that only the documented error classes are thrown.
 * A target's input is always bytes (its corpus form, what test/corpus/<target>/*.bin holds), so that a crasher found
 * by `npm run fuzz` replays without fast-check; the target's arbitrary builds those bytes from a grammar, and
 * fast-check shrinks through the grammar.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

import fc from 'fast-check';

export type TargetName = 'decoder' | 'payloads' | 'msgpack' | 'session';

export interface FuzzTarget {
  readonly name: TargetName;
  /** Inputs in their corpus form. */
  readonly inputs: fc.Arbitrary<Uint8Array>;
  /** Throws (an AssertionError saying what broke) when the input breaks one of the target's properties. */
  check(input: Uint8Array): void | Promise<void>;
  /** One line saying what an input is, for the .txt beside a corpus file. */
  describe(input: Uint8Array): string;
}

/** The time bound of one input through one decoder (reliability.md T-F1), in CPU time. */
export const INPUT_BUDGET_MS = 50;
const BUDGET_ATTEMPTS = 3;

/** CPU time (user + system) this process has used, in ms: unlike wall time, it does not count time others ran. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * Runs `fn` and fails when it takes more than INPUT_BUDGET_MS of CPU time three times in a row: a slow run may be a GC
 * pause, three are the input. CPU time rather than wall time, so that a busy machine (or `npm run fuzz` beside other
 * work) does not make a fast input look slow.
 */
export function withinBudget<T>(fn: () => T, what: string): T {
  let result!: T;
  let fastest = Infinity;
  for (let attempt = 0; attempt < BUDGET_ATTEMPTS && fastest > INPUT_BUDGET_MS; attempt++) {
    const started = cpuMs();
    const value = fn();
    if (attempt === 0) result = value;
    fastest = Math.min(fastest, cpuMs() - started);
  }
  assert.ok(fastest <= INPUT_BUDGET_MS, `${what} took ${fastest.toFixed(1)} ms of CPU time (${BUDGET_ATTEMPTS} times over ${INPUT_BUDGET_MS} ms)`);
  return result;
}

type ErrorClass = abstract new (...args: never[]) => Error;

/** Runs `fn`; returns what it threw when that is one of `allowed`, undefined when it did not throw, fails otherwise. */
export function onlyThrows(fn: () => unknown, allowed: readonly ErrorClass[], what: string): Error | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    if (allowed.some((cls) => error instanceof cls)) return error as Error;
    assert.fail(`${what} threw ${describeThrown(error)}; only ${allowed.map((c) => c.name).join(', ')} may be thrown`);
  }
}

export function describeThrown(error: unknown): string {
  return error instanceof Error ? `${error.constructor.name}: ${error.message}` : `a non-Error ${typeof error}: ${String(error)}`;
}

// ---------------------------------------------------------------- mutations

export type Mutation =
  | { kind: 'flip'; at: number; mask: number }
  | { kind: 'insert'; at: number; byte: number }
  | { kind: 'delete'; at: number }
  | { kind: 'set'; at: number; byte: number };

const byte = fc.integer({ min: 0, max: 255 });

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }, { noNullPrototype: true }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte }, { noNullPrototype: true }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }, { noNullPrototype: true }),
  // the bytes that change a length or a count the most
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0xff) }, { noNullPrototype: true }),
);

/** 1-4 mutations, positions taken modulo the length so any list applies to any bytes. */
export const mutationsArb = fc.array(mutationArb, { minLength: 1, maxLength: 4 });

export function mutate(bytes: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  const arr = Array.from(bytes);
  for (const m of mutations) {
    if (m.kind === 'insert') {
      arr.splice(m.at % (arr.length + 1), 0, m.byte);
    } else if (arr.length > 0) {
      const at = m.at % arr.length;
      if (m.kind === 'flip') arr[at] = arr[at]! ^ m.mask;
      else if (m.kind === 'set') arr[at] = m.byte;
      else arr.splice(at, 1);
    }
  }
  return Uint8Array.from(arr);
}

/** `weight` in `outOf` of the values are `arb`'s, the others null. */
export function sometimes<T>(arb: fc.Arbitrary<T>, weight: number, outOf: number): fc.Arbitrary<T | null> {
  return fc.oneof({ weight: outOf - weight, arbitrary: fc.constant(null) }, { weight, arbitrary: arb });
}

/** Valid bytes, half of the time mutated, one time in six cut short. */
export function maybeMutated(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(valid, sometimes(mutationsArb, 1, 2), sometimes(fc.nat(), 1, 6))
    .map(([bytes, mutations, cut]) => {
      const mutated = mutations === null ? bytes : mutate(bytes, mutations);
      return cut === null ? mutated : mutated.subarray(0, cut % (mutated.length + 1));
    });
}

// ---------------------------------------------------------------- bytes

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

export function hex(bytes: Uint8Array, max = 64): string {
  const shown = Buffer.from(bytes.subarray(0, max)).toString('hex');
  return bytes.length > max ? `${shown}... (${bytes.length} bytes)` : shown;
}

/** The first 16 hex digits of the sha256 of `bytes`: a corpus file's name. */
export function hashOf(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 16);
}

/** A small deterministic PRNG (mulberry32) seeded from the input, so that the cut points of an input never change. */
export function prngFor(bytes: Uint8Array): () => number {
  let state = Number.parseInt(hashOf(bytes).slice(0, 8), 16) >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `bytes` split at random boundaries (pieces of 1 to `maxPiece` bytes, the points fixed by the input). */
export function randomSlices(bytes: Uint8Array, maxPiece = 17): Uint8Array[] {
  const random = prngFor(bytes);
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = 1 + Math.floor(random() * maxPiece);
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

/** `bytes` one byte at a time. */
export function byteByByte(bytes: Uint8Array): Uint8Array[] {
  return Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
}

/** The target's properties as one fast-check property (async: the session target awaits its runs). */
export function propertyOf(target: FuzzTarget): fc.IAsyncProperty<[Uint8Array]> {
  return fc.asyncProperty(target.inputs, async (input) => {
    await target.check(input);
  });
}
