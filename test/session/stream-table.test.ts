/**
 * The session's stream table (session/stream-table.ts): it answers like a Map of the same streams under any sequence
 * of adds and deletes (collisions, long-lived streams, growth and shrinking included).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';

import type { Stream } from '../../src/session/stream.js';
import { StreamTable } from '../../src/session/stream-table.js';

const streamWithId = (id: number): Stream => ({ id }) as Stream;

type Op = { add: number } | { delete: number } | { deleteAbsent: number };

/** Runs `ops` against the table and a Map, comparing every answer and the whole content after each step. */
function runModel(ops: readonly Op[]): void {
  const table = new StreamTable();
  const model = new Map<number, Stream>();
  for (const op of ops) {
    if ('add' in op) {
      if (model.has(op.add)) continue; // ids are never reused on a connection
      const stream = streamWithId(op.add);
      table.add(stream);
      model.set(op.add, stream);
    } else if ('delete' in op) {
      const ids = [...model.keys()];
      if (ids.length === 0) continue;
      const id = ids[op.delete % ids.length]!;
      assert.equal(table.delete(id), true);
      model.delete(id);
    } else {
      assert.equal(table.delete(op.deleteAbsent), model.delete(op.deleteAbsent));
    }
    assert.equal(table.size, model.size);
    for (const [id, stream] of model) assert.equal(table.get(id), stream, `stream ${id}`);
    assert.deepEqual(table.values(), [...model.values()].sort((x, y) => x.id - y.id));
  }
}

void test('stream table: behaves as a Map of the same streams under any adds and deletes', () => {
  const op: fc.Arbitrary<Op> = fc.oneof(
    // small ids collide often in a small table; large ones wrap around its mask
    fc.record({ add: fc.oneof(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 2 ** 31 - 1 })) }),
    fc.record({ delete: fc.nat() }),
    fc.record({ deleteAbsent: fc.integer({ min: 1, max: 300 }) }),
  );
  fc.assert(fc.property(fc.array(op, { maxLength: 400 }), (ops) => runModel(ops)), { numRuns: 300 });
});

void test('stream table: calls in flight with long-lived streams among them, growing to 10 000 and back', () => {
  const table = new StreamTable();
  const open = new Map<number, Stream>();
  let next = 1;
  const add = (): void => {
    const stream = streamWithId(next);
    next += 2; // one side's ids: one parity, sequential
    table.add(stream);
    open.set(stream.id, stream);
  };
  // long-lived streams whose slots the short calls' ids keep landing on
  for (let i = 0; i < 7; i++) add();
  const longLived = [...open.keys()];
  // 64 calls in flight, each closing in turn, for many times the table's size
  const inFlight: number[] = [];
  for (let i = 0; i < 5000; i++) {
    add();
    inFlight.push(next - 2);
    if (inFlight.length > 64) {
      const id = inFlight.shift()!;
      assert.equal(table.delete(id), true);
      open.delete(id);
    }
  }
  // a burst of idle streams, then all but the long-lived ones close
  for (let i = 0; i < 10_000; i++) add();
  for (const id of [...open.keys()]) {
    if (longLived.includes(id)) continue;
    assert.equal(table.delete(id), true);
    open.delete(id);
  }
  assert.equal(table.size, longLived.length);
  for (const id of longLived) assert.equal(table.get(id)?.id, id);
  assert.equal(table.get(next), undefined);
});

void test('ids a peer spaces by the table size do not share one run: a lookup reads a few ids, not thousands', () => {
  // the peer chooses its stream ids (any increasing sequence): 4 000 ids spaced by 2^16, a multiple of any table size
  // they fill, would all have the same home slot if the home were `id & mask` (each lookup then walks the whole run)
  let idReads = 0;
  const counted = (id: number): Stream => ({ get id() { idReads++; return id; } }) as Stream;
  const table = new StreamTable();
  const ids = Array.from({ length: 4000 }, (_, i) => 2 + i * 65536);
  for (const id of ids) table.add(counted(id));
  idReads = 0;
  for (const id of ids) assert.equal(table.get(id)?.id, id);
  const perLookup = (idReads - ids.length) / ids.length; // less the read of the assertion itself
  assert.ok(perLookup < 8, `${perLookup.toFixed(1)} ids read per lookup`);
});
