/**
 * How much a bulk sender may queue before it is asked to wait (session/send-queue.ts highWaterFor): 64 KiB as any
 * sender, or up to 256 KiB while the peer's credit would let all of it out at once and the connection's streams hold
 * less than 1 MiB queued together. So one bulk stream's 64 KiB chunks leave four per flush, and a hundred bulk streams
 * at once hold no more than they did with a 64 KiB mark for all (a counted shim records the most the connection had
 * reserved for queued sends).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { createMemoryPair, createSession } from '../../src/index.js';
import { ConnectionMemory } from '../../src/session/connection-memory.js';
import {
  BULK_CONNECTION_QUEUE_BYTES,
  BULK_HIGH_WATER_BYTES,
  highWaterFor,
  SEND_HIGH_WATER_BYTES,
} from '../../src/session/send-queue.js';
import { Bulk, countingBulk, KiB, MiB } from '../fixtures/bulk.js';
import { within } from '../helpers.js';

void describe('the bulk high-water mark', () => {
  void test('64 KiB for messages, for credit of 64 KiB or less, and once the connection holds 1 MiB queued; else the credit, up to 256 KiB', () => {
    assert.equal(highWaterFor(false, 10 * MiB, 0), SEND_HIGH_WATER_BYTES, 'a message sender');
    assert.equal(highWaterFor(true, 64 * KiB, 0), SEND_HIGH_WATER_BYTES, 'credit of 64 KiB');
    assert.equal(highWaterFor(true, 0, 0), SEND_HIGH_WATER_BYTES, 'no credit at all');
    assert.equal(highWaterFor(true, 100 * KiB, 0), 100 * KiB, 'what the credit lets out');
    assert.equal(highWaterFor(true, 10 * MiB, 0), BULK_HIGH_WATER_BYTES);
    assert.equal(highWaterFor(true, 10 * MiB, BULK_CONNECTION_QUEUE_BYTES), SEND_HIGH_WATER_BYTES, 'the connection holds enough');
  });

  void test('a hundred 4 MiB uploads of 64 KiB chunks at once on one connection: all complete, at most 100 x 128 KiB + 2 MiB queued', { timeout: 30_000 }, async (t) => {
    let maxQueued = 0;
    const reserve = ConnectionMemory.prototype.reserveQueuedSend;
    ConnectionMemory.prototype.reserveQueuedSend = function countedReserve(this: ConnectionMemory, bytes: number) {
      const refusal = reserve.call(this, bytes);
      maxQueued = Math.max(maxQueued, this.queuedSendTotal);
      return refusal;
    };
    t.after(() => (ConnectionMemory.prototype.reserveQueuedSend = reserve));
    const [a, b] = createMemoryPair();
    const impl = countingBulk();
    const server = createSession(b, 'acceptor', { services: [impl] });
    const client = createSession(a, 'dialer');
    t.after(() => {
      client.destroy();
      server.destroy();
    });
    await within(client.ready, 1000, 'handshake');
    const chunk = new Uint8Array(64 * KiB);
    const bulk = client.client(Bulk);
    const uploads = Array.from({ length: 100 }, (_, i) =>
      bulk.put(
        { name: `u${i}` },
        (async function* body() {
          for (let n = 0; n < 64; n++) yield chunk;
        })(),
      ),
    );
    const replies = await within(Promise.all(uploads), 25_000, 'a hundred uploads');
    for (const reply of replies) assert.equal(reply.bytes, 4 * MiB);
    const bound = 100 * 128 * KiB + 2 * MiB;
    assert.ok(maxQueued <= bound, `${(maxQueued / MiB).toFixed(1)} MiB queued at most (bound ${bound / MiB} MiB)`);
  });
});
