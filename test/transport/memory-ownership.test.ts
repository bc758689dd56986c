/**
 * The in-memory transport hands the other end its own bytes, as a socket does: a handler that changes a chunk it
 * received changes nothing of the caller's, and a caller that reuses its buffer after the call changes nothing the
 * handler kept. (The frame decoder keeps views of what a transport delivers, so a transport that passed the writer's
 * buffers through would alias the two sides.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createMemoryPair, createSession, defineService, serve, upload } from '../../src/index.js';
import { within } from '../helpers.js';

const Bytes = defineService('memory.ownership.v1', { put: upload<null, number>() });

void test('memory transport: an upload handler owns its chunks; the caller owns its buffer', { timeout: 5_000 }, async (t) => {
  const kept: Uint8Array[] = [];
  const [a, b] = createMemoryPair();
  const caller = createSession(a, 'dialer', {});
  const callee = createSession(b, 'acceptor', {
    services: [
      serve(Bytes, {
        async put(_request, body) {
          for await (const chunk of body) {
            kept.push(chunk);
            chunk.fill(99);
          }
          return kept.length;
        },
      }),
    ],
  });
  t.after(() => {
    caller.destroy();
    callee.destroy();
  });
  await within(Promise.all([caller.ready, callee.ready]), 2_000, 'handshake');
  const mine = new Uint8Array(32 * 1024).fill(1);
  async function* source(): AsyncGenerator<Uint8Array> {
    yield mine;
  }
  assert.ok((await caller.client(Bytes).put(null, source())) >= 1);
  assert.ok(mine.every((byte) => byte === 1), "the handler's writes did not reach the caller's buffer");
  mine.fill(7);
  assert.ok(kept.every((chunk) => chunk.every((byte) => byte === 99)), "the caller's reuse did not reach what the handler kept");
  assert.ok(!kept.some((chunk) => chunk.buffer === mine.buffer));
});
