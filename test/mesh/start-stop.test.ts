/**
 * A mesh node's start() and stop(): stop() while start() is still binding leaves nothing listening, and a node stopped
 * before it started never listens. (Stopping a mesh during a dial's handshake, and a process exiting on its own after
 * mesh.stop(), are in session/close.test.ts.)
 */
import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { test } from 'node:test';

import { newMesh, unixUrl } from '../fixtures/connections.js';
import { within } from '../helpers.js';

/** Whether something accepts a connection at `url` (tcp:// or unix://) right now. */
async function accepts(url: string): Promise<boolean> {
  const parsed = new URL(url);
  const socket = parsed.protocol === 'unix:' ? createConnection(parsed.pathname) : createConnection({ host: parsed.hostname, port: Number(parsed.port) });
  try {
    return await within(
      new Promise<boolean>((resolve) => {
        socket.once('connect', () => resolve(true));
        socket.once('error', () => resolve(false));
      }),
      2000,
      `a connection attempt to ${url}`,
    );
  } finally {
    socket.destroy();
  }
}

// Regression found by review (fixed in 0e3bab8: mesh.stop() during start() closes the listener).
void test('mesh.stop() while start() is still binding leaves nothing listening at its address; stop() before start() makes start() reject and listen nowhere', { timeout: 5000 }, async (t) => {
  const url = unixUrl(t);
  const mesh = newMesh(t, { name: 'a', listen: url, peers: { b: unixUrl(t) } });
  const started = mesh.start();
  await within(mesh.stop({ graceMs: 0 }), 2000, 'stop() during start()');
  await within(
    started.catch(() => undefined),
    2000,
    'start() to settle',
  );
  assert.equal(await accepts(url), false, `nothing listens at ${url} after stop()`);
  assert.equal(mesh.peer('b').state, 'closed');
  await assert.rejects(mesh.start(), 'start() after stop() rejects');

  const url2 = unixUrl(t);
  const never = newMesh(t, { name: 'a', listen: url2, peers: { b: unixUrl(t) } });
  await within(never.stop({ graceMs: 0 }), 2000, 'stop() before start()');
  await assert.rejects(never.start(), /stopped/, 'start() after stop() rejects');
  assert.equal(await accepts(url2), false, `nothing listens at ${url2}`);
});
