/**
 * The cache of method names read from OPENs (wire/method-names.ts) answers exactly what decoding the bytes would:
 * names of the same length told apart, more names than it holds, names read from anywhere in a buffer, and invalid
 * UTF-8 still refused.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';

import { methodName } from '../../src/wire/method-names.js';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

void test('method names: the cached answer is always the decoded one, whatever the order and number of names', () => {
  const name = fc.oneof(fc.constantFrom('svc.A/a', 'svc.A/b', 'svc.B/a', 'svc.Échos/é'), fc.string({ minLength: 1, maxLength: 40 }));
  fc.assert(
    fc.property(fc.array(fc.tuple(name, fc.nat(8)), { maxLength: 200 }), (calls) => {
      for (const [text, pad] of calls) {
        const bytes = utf8(text);
        const buffer = new Uint8Array(pad + bytes.length + 3).fill(0x2a);
        buffer.set(bytes, pad);
        assert.equal(methodName(buffer, pad, pad + bytes.length), new TextDecoder().decode(bytes));
      }
    }),
    { numRuns: 200 },
  );
});

void test('method names: invalid UTF-8 is refused, also right after a valid name of the same length', () => {
  assert.equal(methodName(utf8('ab'), 0, 2), 'ab');
  assert.equal(methodName(Uint8Array.of(0xc3, 0x28), 0, 2), undefined);
  assert.equal(methodName(Uint8Array.of(0xc3, 0x28), 0, 2), undefined);
  assert.equal(methodName(utf8('é'), 0, 2), 'é');
});
