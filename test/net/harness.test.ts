/**
 * The test network itself (fixtures/netns.ts, links.ts): a shaped link delays, limits and drops what it should, and
 * two nodes in two namespaces call each other over it. If these fail, every other test:net result is suspect.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { netSkipReason, TestNetwork } from './fixtures/netns.js';
import { linkSkipReason, shapeLink } from './fixtures/links.js';
import { nodeUrl, startNode } from './fixtures/net-node.js';

const skip = netSkipReason() ?? linkSkipReason();
if (skip !== undefined) console.log(`# test:net skipped: ${skip}`);

void describe('test network', { skip, timeout: 60_000 }, () => {
  void it('two nodes in two namespaces call each other; a 25 ms delay each way makes a ~50 ms round trip', async (t) => {
    const network = await TestNetwork.create(t, { hosts: 2 });
    const [h1, h2] = network.hosts as [typeof network.hosts[0], typeof network.hosts[0]];
    const a = await startNode(network, h1, { name: 'a', peers: { b: nodeUrl(h2) } });
    const b = await startNode(network, h2, { name: 'b', peers: { a: nodeUrl(h1) } });
    const plain = await a.request<{ node: string; ms: number }>('echo', { peer: 'b', waitForReady: true });
    assert.equal(plain.node, 'b');
    await shapeLink(network, h1, { delayMs: 25 });
    await shapeLink(network, h2, { delayMs: 25 });
    const rtts: number[] = [];
    for (let i = 0; i < 5; i++) rtts.push((await b.request<{ ms: number }>('echo', { peer: 'a' })).ms);
    const best = Math.min(...rtts);
    assert.ok(best >= 49 && best < 80, `round trips ${rtts.map((r) => r.toFixed(1)).join(', ')} ms: expected ~50`);
  });

  void it('a partitioned host hears nothing until healed', async (t) => {
    const network = await TestNetwork.create(t, { hosts: 2 });
    const [h1, h2] = network.hosts as [typeof network.hosts[0], typeof network.hosts[0]];
    const a = await startNode(network, h1, { name: 'a', peers: { b: nodeUrl(h2) } });
    await startNode(network, h2, { name: 'b', peers: { a: nodeUrl(h1) } });
    await a.request('echo', { peer: 'b', waitForReady: true });
    await network.partition(h2);
    await assert.rejects(a.request('echo', { peer: 'b', timeoutMs: 500 }), /DEADLINE_EXCEEDED/);
    await network.heal(h2);
    await a.request('echo', { peer: 'b', timeoutMs: 5_000 });
  });

  void it('a 100 Mbit/s link carries about 100 Mbit/s', async (t) => {
    const network = await TestNetwork.create(t, { hosts: 2 });
    const [h1, h2] = network.hosts as [typeof network.hosts[0], typeof network.hosts[0]];
    const a = await startNode(network, h1, { name: 'a', peers: { b: nodeUrl(h2) } });
    await startNode(network, h2, { name: 'b', peers: { a: nodeUrl(h1) } });
    await a.request('echo', { peer: 'b', waitForReady: true });
    await shapeLink(network, h2, { rateMbit: 100 });
    const r = await a.request<{ ms: number; bytes: number; sha256: string; expected: string }>('upload', { peer: 'b', bytes: 24 * 2 ** 20, seed: 1 });
    assert.equal(r.sha256, r.expected);
    const mbit = (r.bytes * 8) / (r.ms / 1000) / 1e6;
    assert.ok(mbit > 60 && mbit < 105, `${mbit.toFixed(1)} Mbit/s over a 100 Mbit/s link`);
  });
});
