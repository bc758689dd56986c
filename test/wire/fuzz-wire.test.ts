/**
 * Fuzzing the wire layer with fixed seeds, so a failure reproduces (reliability.md T-F1, T-F6): the `decoder` and
 * `payloads` targets of test/fuzz/, whose headers say what each input is checked for. `npm run fuzz` runs the same
 * targets with random seeds; what it finds is replayed by test/fuzz/corpus.test.ts.
 */
import { test } from 'node:test';

import fc from 'fast-check';

import { decoderTarget } from '../fuzz/decoder-target.js';
import { propertyOf } from '../fuzz/harness.js';
import { payloadsTarget } from '../fuzz/payloads-target.js';

void test('T-F1 T-F6 frame decoder fuzz: random, lying and mutated byte streams raise only a documented ProtocolError within 50 ms, decode the same whole, byte by byte or split at random, and valid frames re-encode bit-exact', async () => {
  await fc.assert(propertyOf(decoderTarget), { seed: 20261205, numRuns: 3000 });
});

void test('T-F1 payload decoder fuzz: random and mutated OPEN, END, RESET, GOAWAY, HELLO, metadata, CREDIT and PING payloads raise only MalformedPayloadError or MetadataLimitError within 50 ms, re-encode to the same value, and never touch Object.prototype', async () => {
  await fc.assert(propertyOf(payloadsTarget), { seed: 20261206, numRuns: 3000 });
});
