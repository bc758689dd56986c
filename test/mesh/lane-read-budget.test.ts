/**
 * A mesh's `data` lane reads with a 64 KiB budget per event-loop turn on both sides of its connection (the dialer knows
 * its lane, the listener learns it from the dialer's HELLO); control connections read with the session default, 256 KiB.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';

import { Mesh } from '../../src/index.js';
import { SocketTransport } from '../../src/transport/socket.js';
import { sleep, until, within } from '../helpers.js';

const FAST = { initialDelayMs: 20, maxDelayMs: 200, lossSpreadMs: 50 };

/** Records every read budget set on a SocketTransport during the test, with the side `sideOf` names. */
function recordBudgets(t: TestContext, sideOf: (transport: SocketTransport) => string): Array<{ side: string; bytes: number }> {
  const seen: Array<{ side: string; bytes: number }> = [];
  const original = SocketTransport.prototype.setReadBudget;
  SocketTransport.prototype.setReadBudget = function (this: SocketTransport, bytes: number) {
    seen.push({ side: sideOf(this), bytes });
    original.call(this, bytes);
  };
  t.after(() => {
    SocketTransport.prototype.setReadBudget = original;
  });
  return seen;
}

for (const dataLane of [true, false]) {
  const name = dataLane
    ? 'dataLane: true: the data connection reads with a 64 KiB budget on both sides, the control connection with the default 256 KiB'
    : 'dataLane: false: the control connection reads with the default 256 KiB budget';
  void test(name, { timeout: 10_000 }, async (t) => {
    const meshes = ['a', 'b'].map((node) => new Mesh({ name: node, listen: 'tcp://127.0.0.1:0', dataLane, reconnect: FAST, log: () => undefined }));
    for (const mesh of meshes) t.after(() => within(mesh.stop({ graceMs: 0 }), 3000, `mesh ${mesh.name} to stop`));
    await Promise.all(meshes.map((mesh) => mesh.start()));
    const urls = meshes.map((mesh) => mesh.url);
    // a dialed socket's peer is the listening address it dialed; an accepted one's is the dialer's ephemeral port
    const seen = recordBudgets(t, (transport) => (urls.includes(transport.peer.address) ? 'dialing side' : 'accepting side'));
    const [a, b] = meshes as [Mesh, Mesh];
    a.addPeer('b', b.url!);
    b.addPeer('a', a.url!);
    const lanes = dataLane ? ['control', 'data'] : ['control'];
    const peers = [a.peer('b'), b.peer('a')];
    await until(() => peers.every((peer) => lanes.every((lane) => peer.sessions.get(lane)?.size === 1)), 3000, 'every lane up on both sides');
    await sleep(50); // the accepting side applies its budget as its own handshake completes
    const control = [{ side: 'accepting side', bytes: 256 * 1024 }, { side: 'dialing side', bytes: 256 * 1024 }];
    const data = dataLane ? [{ side: 'accepting side', bytes: 64 * 1024 }, { side: 'dialing side', bytes: 64 * 1024 }] : [];
    const bySideAndSize = (x: { side: string; bytes: number }, y: { side: string; bytes: number }): number => x.side.localeCompare(y.side) || x.bytes - y.bytes;
    assert.deepEqual([...seen].sort(bySideAndSize), [...control, ...data].sort(bySideAndSize));
  });
}
