/**
 * A Mesh with `membership` (src/mesh/mesh.ts wiring, src/mesh/membership/): sources start with the mesh and stop with
 * it, their peers are real peers (calls flow), leave when the source drops them, are checked as addPeer checks them,
 * and each change is a `membership` event; static peers are not the sources' to touch.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { fileMembership, type Mesh, type MembershipChange } from '../../src/index.js';
import { newMesh, startMesh } from '../fixtures/connections.js';
import { testPki } from '../fixtures/certs.js';
import { ManualSource } from '../fixtures/membership.js';
import { Svc, svcService } from '../fixtures/mesh-service.js';
import { socketPath, until, within } from '../helpers.js';

void describe('mesh: membership', () => {
  void test('three nodes take their peers from one watched file: calls flow every way; a node dropped from the file is removed everywhere', { timeout: 20_000 }, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'gw-membership-mesh-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'peers.json');
    const urls = { n1: `unix://${socketPath()}`, n2: `unix://${socketPath()}`, n3: `unix://${socketPath()}` };
    await writeFile(path, JSON.stringify(urls));
    const changes: Record<string, MembershipChange[]> = { n1: [], n2: [], n3: [] };
    const nodes: Record<string, Mesh> = {};
    for (const name of ['n1', 'n2', 'n3'] as const) {
      const membership = fileMembership({ path, intervalMs: 60_000, removeAfterMs: 0, graceMs: 0 });
      nodes[name] = await startMesh(t, { name, listen: urls[name], membership, services: [svcService(name)], fallbackDialAfterMs: 100 });
      nodes[name].on('membership', (change) => changes[name]!.push(change));
    }
    await until(() => Object.values(nodes).every((mesh) => mesh.peerNames.length === 2), 3_000, 'every node to know the other two');
    for (const [from, mesh] of Object.entries(nodes)) {
      for (const to of mesh.peerNames) {
        assert.equal((await mesh.peer(to).client(Svc).whoami(from, { waitForReady: true, timeoutMs: 3_000 })).node, to);
      }
    }
    assert.deepEqual(changes.n1!.map((c) => `${c.change} ${c.peer}`).sort(), ['add n2', 'add n3']);

    await writeFile(`${path}.new`, JSON.stringify({ n1: urls.n1, n2: urls.n2 }));
    await rename(`${path}.new`, path);
    await until(() => !nodes.n1!.peerNames.includes('n3') && !nodes.n2!.peerNames.includes('n3'), 3_000, 'n3 removed by n1 and n2');
    assert.deepEqual({ ...changes.n1!.at(-1)! }, { change: 'remove', peer: 'n3', url: urls.n3, source: `file ${path}` });
    assert.throws(() => nodes.n1!.peer('n3'), RangeError);
    assert.equal((await nodes.n1!.peer('n2').client(Svc).whoami('still', { timeoutMs: 2_000 })).node, 'n2');
  });

  void test('the source starts with start() and stops with stop(); a static peer is never its to remove or re-address', async (t) => {
    const source = new ManualSource('manual', 0);
    const logs: string[] = [];
    const mesh = newMesh(t, { name: 'a', peers: { s: 'tcp://127.0.0.1:1' }, membership: source }, logs);
    assert.equal(source.sink, undefined, 'not read before start()');
    await mesh.start();
    assert.equal((source.sink as { scheme: string } | undefined)?.scheme, 'tcp');
    source.answer({ a: 'tcp://127.0.0.1:2', s: 'tcp://127.0.0.1:3', b: 'tcp://127.0.0.1:4' });
    assert.deepEqual(mesh.peerNames.sort(), ['b', 's']);
    assert.equal(mesh.peer('s').url, 'tcp://127.0.0.1:1');
    source.answer({});
    assert.deepEqual(mesh.peerNames, ['s']);
    await within(mesh.stop({ graceMs: 0 }), 3_000, 'stop');
    assert.equal(source.stopped, true);
  });

  void test("a source's peer the application takes over (await removePeer, then addPeer) stays the application's, whatever the source answers meanwhile", async (t) => {
    const source = new ManualSource('manual', 0);
    const mesh = newMesh(t, { name: 'a', membership: source });
    await mesh.start();
    source.answer({ x: 'tcp://127.0.0.1:2' });
    const removing = mesh.removePeer('x', { graceMs: 0 });
    source.answer({ x: 'tcp://127.0.0.1:2' }); // a read while the removal waits for its connections
    await removing;
    const mine = mesh.addPeer('x', 'tcp://127.0.0.1:3');
    source.answer({});
    source.answer({ x: 'tcp://127.0.0.1:4' });
    assert.equal(mesh.peer('x'), mine);
    assert.equal(mesh.peer('x').url, 'tcp://127.0.0.1:3');
  });

  void test("entries addPeer would refuse are skipped with a warning in the mesh's log, never thrown", async (t) => {
    const source = new ManualSource('manual', 0);
    const logs: string[] = [];
    const mesh = newMesh(t, { name: 'a', membership: source }, logs);
    await mesh.start();
    const changes: MembershipChange[] = [];
    mesh.on('membership', (change) => changes.push(change));
    assert.doesNotThrow(() => source.answer({ tlsnode: 'tls://127.0.0.1:1', junk: 'nonsense', ok: 'tcp://127.0.0.1:2' }));
    assert.deepEqual(mesh.peerNames, ['ok']);
    assert.deepEqual(changes.map((c) => `${c.change} ${c.peer}`), ['add ok']);
    assert.ok(logs.some((l) => /^warn mesh a: membership from manual: skipping "tlsnode" -> "tls:\/\/127.0.0.1:1": .*TLS address/.test(l)), logs.join('\n'));
    assert.ok(logs.some((l) => /^warn .*skipping "junk"/.test(l)));
    assert.ok(logs.some((l) => /^info mesh a: membership from manual: add ok \(tcp:\/\/127.0.0.1:2\)/.test(l)));
  });

  void test('a mesh with tls asks its sources for tls:// addresses, and skips tcp:// ones', async (t) => {
    const source = new ManualSource('manual', 0);
    const pair = testPki().node('a');
    const logs: string[] = [];
    const mesh = newMesh(t, { name: 'a', membership: source, tls: { key: pair.key, cert: pair.cert, ca: testPki().ca } }, logs);
    await mesh.start();
    assert.equal(source.sink?.scheme, 'tls');
    source.answer({ b: 'tls://127.0.0.1:1', c: 'tcp://127.0.0.1:2' });
    assert.deepEqual(mesh.peerNames, ['b']);
    assert.ok(logs.some((l) => /skipping "c"/.test(l)));
  });

  void test('a source given to two meshes is refused by the second', (t) => {
    const source = new ManualSource();
    newMesh(t, { name: 'a', membership: source });
    assert.throws(() => newMesh(t, { name: 'b', membership: source }), /already given to a mesh/);
  });
});
