/**
 * A node that finds itself in its membership answers under another name (its `name` is not what the source calls it:
 * with A / AAAA records, `ip:port`): the entry at its own listen address is skipped with one warning naming the fix,
 * instead of a peer that dials the node itself for ever (src/mesh/membership/own-address.ts, reconciler.ts).
 */
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { describe, test } from 'node:test';

import { ownAddressTest } from '../../src/mesh/membership/own-address.js';
import { MembershipReconciler } from '../../src/mesh/membership/reconciler.js';
import { newMesh } from '../fixtures/connections.js';
import { FakeClock, FakeMeshTarget, ManualSource } from '../fixtures/membership.js';
import { socketPath } from '../helpers.js';

/** An address of this host that is not loopback, if it has one. */
const external = Object.values(networkInterfaces())
  .flat()
  .find((i) => i !== undefined && !i.internal && i.family === 'IPv4')?.address;

void describe('membership: a node named unlike its source names it', () => {
  void test('the entry at its own listen address is skipped with one warning that names the fix; the others are added', () => {
    const target = new FakeMeshTarget('n1');
    target.listening = 'tcp://10.0.0.1:7001';
    const source = new ManualSource('dns A nodes.example', 0);
    new MembershipReconciler(source, target, new FakeClock().now).start();
    const answer = { '10.0.0.1:7001': 'tcp://10.0.0.1:7001', '10.0.0.2:7001': 'tcp://10.0.0.2:7001', '10.0.0.1:7002': 'tcp://10.0.0.1:7002' };
    source.answer(answer);
    source.answer(answer);
    assert.deepEqual(Object.keys(target.snapshot()), ['10.0.0.1:7002', '10.0.0.2:7001']);
    const warnings = target.warnings(/own address/);
    assert.equal(warnings.length, 1, target.warnings().join('\n'));
    assert.match(warnings[0]!, /skipping "10.0.0.1:7001" -> "tcp:\/\/10.0.0.1:7001": that is this node's own address \(it listens on tcp:\/\/10.0.0.1:7001\): the source calls this node "10.0.0.1:7001", not "n1"; name it "10.0.0.1:7001"/);
  });

  void test('listening on every interface: any address of this host at its port is itself; another port, or another host, is not', () => {
    const own = ownAddressTest('tcp://0.0.0.0:7001');
    assert.equal(own('tcp://127.0.0.1:7001'), true);
    assert.equal(own('tcp://127.0.0.5:7001'), true, 'all of 127.0.0.0/8 is this host');
    assert.equal(own('tcp://localhost:7001'), true);
    if (external !== undefined) assert.equal(own(`tcp://${external}:7001`), true, `this host's ${external}`);
    assert.equal(own('tcp://127.0.0.1:7002'), false);
    assert.equal(own('tcp://192.0.2.1:7001'), false, 'TEST-NET-1: never a local address');
    assert.equal(ownAddressTest('tls://[::]:7001')('tls://[::1]:7001'), true);
  });

  void test('listening on one address: only that address (IPv6 compared canonically), and a unix listener only its path', () => {
    assert.equal(ownAddressTest('tcp://10.0.0.1:7001')('tcp://10.0.0.1:7001'), true);
    assert.equal(ownAddressTest('tcp://127.0.0.1:7001')('tcp://127.0.0.2:7001'), false, 'another listener may hold 127.0.0.2:7001');
    assert.equal(ownAddressTest('tcp://[fd00:201:0:0::1]:7001')('tcp://[fd00:201::1]:7001'), true);
    assert.equal(ownAddressTest('tcp://Node1.Example:7001')('tcp://node1.example:7001'), true);
    assert.equal(ownAddressTest('unix:///run/a.sock')('unix:///run/a.sock'), true);
    assert.equal(ownAddressTest('unix:///run/a.sock')('unix:///run/b.sock'), false);
    assert.equal(ownAddressTest('unix:///run/a.sock')('tcp://127.0.0.1:7001'), false);
    assert.equal(ownAddressTest(undefined)('tcp://127.0.0.1:7001'), false, 'a node that only dials');
    assert.equal(ownAddressTest('tcp://0.0.0.0:7001')('nonsense'), false);
  });

  for (const listen of ['tcp://127.0.0.1:0', 'tcp://0.0.0.0:0', 'unix']) {
    void test(`a mesh listening on ${listen} does not add itself under the name the source gives it`, async (t) => {
      const source = new ManualSource('manual', 0);
      const logs: string[] = [];
      const mesh = newMesh(t, { name: 'n1', listen: listen === 'unix' ? `unix://${socketPath()}` : listen, membership: source }, logs);
      await mesh.start();
      const self = listen === 'unix' ? mesh.url! : mesh.url!.replace('0.0.0.0', '127.0.0.1');
      source.answer({ [self]: self, other: 'tcp://127.0.0.1:1' });
      assert.deepEqual(mesh.peerNames, ['other']);
      assert.equal(logs.filter((l) => /^warn .*own address/.test(l)).length, 1, logs.join('\n'));
    });
  }
});
