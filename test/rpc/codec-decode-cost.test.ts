/**
 * What the msgpack codec's decode does to what it is given and what it hands back: the payload (a view of a socket
 * chunk) is read, never changed (msgpackr used to hang a fresh DataView on each one as a property: an allocation and a
 * new hidden class per message), and nothing decoded points into the buffer small messages are decoded from.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createMsgpackCodec, msgpackCodec } from '../../src/index.js';

void test('msgpack decode leaves the payload as it was: no property (msgpackr\'s cached DataView) is added to it', () => {
  const encoded = msgpackCodec.encode({ data: new Uint8Array(32).fill(7), n: 1 });
  const socketChunk = Buffer.alloc(encoded.length + 10);
  socketChunk.set(encoded, 5);
  const payload = socketChunk.subarray(5, 5 + encoded.length);
  const keys = Reflect.ownKeys(payload).filter((k) => typeof k !== 'string' || !/^\d+$/.test(k));
  assert.deepEqual(msgpackCodec.decode(payload), { data: Buffer.alloc(32, 7), n: 1 });
  assert.deepEqual(Reflect.ownKeys(payload).filter((k) => typeof k !== 'string' || !/^\d+$/.test(k)), keys);
});

void test('msgpack decode: values decoded from one message are untouched by the next (small, large, and another codec)', () => {
  const other = createMsgpackCodec({ maxElements: 1000 });
  const first = msgpackCodec.decode(msgpackCodec.encode({ data: new Uint8Array(32).fill(1), s: 'first' })) as { data: Uint8Array; s: string };
  const second = other.decode(other.encode({ data: new Uint8Array(32).fill(2), s: 'second' })) as { data: Uint8Array; s: string };
  const large = msgpackCodec.decode(msgpackCodec.encode({ data: new Uint8Array(100_000).fill(3) })) as { data: Uint8Array };
  msgpackCodec.decode(msgpackCodec.encode({ data: new Uint8Array(64).fill(4), s: 'overwrites what came before' }));
  assert.ok(first.data.every((b) => b === 1) && first.s === 'first');
  assert.ok(second.data.every((b) => b === 2) && second.s === 'second');
  assert.ok(large.data.every((b) => b === 3));
  assert.equal(first.data.buffer === second.data.buffer, false);
});
