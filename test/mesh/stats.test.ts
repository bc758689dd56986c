/**
 * mesh.stats() and peer.stats(): calls counted per peer, both directions, with the peer's lanes summed (a download
 * goes over the data lane, unary calls over control), totals over every peer, counts kept across a reconnection, and
 * the Prometheus collector labelling by the mesh's own peer names; an inspect snapshot asked of a mesh node covers
 * all of its connections.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Registry } from 'prom-client';

import { InspectService } from '../../src/index.js';
import { collectGridwireMetrics } from '../../src/observe/prometheus.js';
import { controlSessions, startMesh } from '../fixtures/connections.js';
import { Svc, svcService } from '../fixtures/mesh-service.js';
import { socketPath, until, within } from '../helpers.js';

void test('mesh.stats(): per peer (lanes summed) and totals, both directions, kept across a reconnection', { timeout: 20_000 }, async (t) => {
  const urls = { a: `unix://${socketPath()}`, b: `unix://${socketPath()}`, c: `unix://${socketPath()}` };
  const common = { fallbackDialAfterMs: 100, dataLane: true, inspect: true };
  const a = await startMesh(t, { name: 'a', listen: urls.a, peers: { b: urls.b, c: urls.c }, services: [svcService('a')], ...common });
  const b = await startMesh(t, { name: 'b', listen: urls.b, peers: { a: urls.a }, services: [svcService('b')], ...common });
  const c = await startMesh(t, { name: 'c', listen: urls.c, peers: { a: urls.a }, services: [svcService('c')], ...common });
  await within(Promise.all([a.peer('b').whenReady(), a.peer('c').whenReady(), b.peer('a').whenReady(), c.peer('a').whenReady()]), 5000, 'ready');

  const toB = a.peer('b').client(Svc);
  for (let i = 0; i < 3; i++) await toB.whoami(`${i}`);
  let bytes = 0;
  for await (const chunk of toB.get({ bytes: 256 * 1024 })) bytes += chunk.length; // over the data lane
  assert.equal(bytes, 256 * 1024);
  await c.peer('a').client(Svc).whoami('from c');

  const stats = a.stats();
  const method = (peer: string, path: string) => stats.peers[peer]!.calls.methods[path];
  assert.equal(method('b', 'test.mesh.v1/whoami')!.made.byStatus.OK, 3);
  assert.equal(method('b', 'test.mesh.v1/get')!.made.byStatus.OK, 1, 'the data lane counts in the same peer');
  assert.equal(method('c', 'test.mesh.v1/whoami')!.served.byStatus.OK, 1);
  assert.equal(stats.peers.b!.state, 'ready');
  assert.ok(stats.peers.b!.connections >= 2, `control and data lanes: ${stats.peers.b!.connections}`);
  assert.ok(stats.peers.b!.bytesIn >= 256 * 1024);
  assert.equal(stats.totals.calls.made.byStatus.OK, 4);
  assert.equal(stats.totals.calls.served.byStatus.OK, 1);
  assert.deepEqual(b.stats().peers.a!.calls.served.byStatus, { OK: 4 }, 'the other side served them');

  // the Prometheus collector labels by peer name (the mesh's own list)
  const registry = new Registry();
  collectGridwireMetrics(registry, a);
  const text = await registry.metrics();
  assert.match(text, /^gridwire_calls_finished_total\{peer="b",direction="made",method="test\.mesh\.v1\/whoami",status="OK"\} 3$/m);
  assert.match(text, /^gridwire_calls_finished_total\{peer="c",direction="served",method="test\.mesh\.v1\/whoami",status="OK"\} 1$/m);

  // an inspect snapshot asked on one connection of a shows every connection of the node
  const snapshot = await b.peer('a').client(InspectService).snapshot({});
  assert.equal(snapshot.node, 'a');
  assert.deepEqual([...new Set(snapshot.connections.map((x) => x.peer.nodeName))].sort(), ['b', 'c']);

  // a lost connection: the peer redials, and what the old one counted stays
  const [control] = controlSessions(a, 'b');
  control!.destroy();
  await until(() => controlSessions(a, 'b').some((s) => s !== control && s.acceptsCalls), 5000, 'a new control connection to b');
  await toB.whoami('after');
  assert.equal(a.stats().peers.b!.calls.methods['test.mesh.v1/whoami']!.made.byStatus.OK, 4);
});
