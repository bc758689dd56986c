/**
 * Fuzzing the msgpack decode path with a fixed seed (reliability.md T-F1, T-F4): the `msgpack` target of test/fuzz/,
 * small inputs shaped like msgpack (headers with lying counts, deep nesting, extension types, mutated real messages).
 * `npm run fuzz -- --target msgpack` runs it with random seeds.
 */
import { test } from 'node:test';

import fc from 'fast-check';

import { propertyOf } from '../fuzz/harness.js';
import { msgpackTarget } from '../fuzz/msgpack-target.js';

void test('T-F1 msgpack decode fuzz: random, hand-built and mutated msgpack make msgpackCodec.decode return or throw an Error within 50 ms, never touching Object.prototype', async () => {
  await fc.assert(propertyOf(msgpackTarget), { seed: 20261207, numRuns: 3000 });
});
