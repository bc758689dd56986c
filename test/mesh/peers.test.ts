/**
 * Which nodes a mesh talks to: a peer removed at runtime (its calls fail, its new attempts are refused), a node that is
 * not (or no longer) a peer (refused before any handler runs), and a peer's address that leads to another node (the
 * dialer refuses it and says so).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { connect, RpcError, Status, statusName, type PeerStateEvent } from '../../src/index.js';
import { controlSessions, dialerOf, newMesh, startMesh, unixUrl } from '../fixtures/connections.js';
import { Probe, Svc, svcService } from '../fixtures/mesh-service.js';
import { rejectsWithStatus, sleep, socketPath, until, within } from '../helpers.js';

// ---------------------------------------------------------------- a peer removed at runtime

void describe('mesh: removing a peer', () => {
  void test("a.removePeer('b'): the old handle's calls fail UNAVAILABLE, peer('b') throws, b's connection closes and b's new attempts are refused", { timeout: 10_000 }, async (t) => {
    const urls = { a: `unix://${socketPath()}`, b: `unix://${socketPath()}` };
    const logsA: string[] = [];
    const a = await startMesh(t, { name: 'a', listen: urls.a, peers: { b: urls.b }, services: [svcService('a')], fallbackDialAfterMs: 100 }, logsA);
    const b = await startMesh(t, { name: 'b', listen: urls.b, peers: { a: urls.a }, services: [svcService('b')], fallbackDialAfterMs: 100 });
    await within(Promise.all([a.peer('b').whenReady({ timeoutMs: 3000 }), b.peer('a').whenReady({ timeoutMs: 3000 })]), 4000, 'both ready');
    const handle = a.peer('b');
    const client = handle.client(Svc);
    assert.equal((await client.whoami('before', { timeoutMs: 2000 })).node, 'b');
    const [bSession] = controlSessions(b, 'a');
    assert.ok(bSession !== undefined);
    const bStates: PeerStateEvent[] = [];
    b.on('peer', (e) => bStates.push(e));

    await within(a.removePeer('b', { graceMs: 500 }), 3000, 'removePeer');
    assert.throws(() => a.peer('b'), RangeError);
    assert.equal(handle.state, 'closed');
    const start = performance.now();
    const error = await rejectsWithStatus(client.whoami('after', { waitForReady: true, timeoutMs: 2000 }), Status.UNAVAILABLE, 'waitForReady on the old handle');
    assert.ok(performance.now() - start < 100, 'at once, not at the deadline');
    assert.equal(error.retrySafe, true);
    await rejectsWithStatus(client.whoami('fail-fast'), Status.UNAVAILABLE, 'fail-fast on the old handle');
    await within(bSession.closed, 2000, "b's connection to a to close");
    assert.match(bSession.core.peerGoawayMessage ?? '', /removed b/);

    // b keeps trying (as the designated dialer, or as the fallback after 100 ms); a refuses every attempt
    await until(() => logsA.some((line) => /node "b" is not a peer of a/.test(line)), 3000, 'a refused a connection from b');
    await sleep(500);
    const refusals = logsA.filter((line) => /node "b" is not a peer of a/.test(line)).length;
    const readyAgain = bStates.filter((e) => e.state === 'ready').length;
    t.diagnostic(`a refused b ${refusals} time(s) in ~0.5 s; b's peer 'a' went 'ready' ${readyAgain} time(s); b states: ${bStates.map((e) => e.state).join(',')}`);
    assert.ok(bStates.some((e) => /not a peer of a/.test(e.error?.message ?? '')), "b learned why (the GOAWAY's reason)");
    assert.notEqual(b.peer('a').state, 'ready');
  });

  void test(
    'a node that is not (or no longer) a peer never gets a call served: its connection is refused before any handler runs',
    {
      timeout: 10_000,
      // Guards the admission check: a call sent in the same read as the stranger's HELLO must be refused, not served
      // (it was, 50 of 50, when the check ran after the handshake, in listen()'s onSession).
    },
    async (t) => {
      const urls = { a: `unix://${socketPath()}`, b: `unix://${socketPath()}` };
      const probeA = new Probe();
      const a = await startMesh(t, { name: 'a', listen: urls.a, peers: { b: urls.b }, services: [svcService('a', probeA)], fallbackDialAfterMs: 100 });
      const b = await startMesh(t, { name: 'b', listen: urls.b, peers: { a: urls.a }, services: [svcService('b')], fallbackDialAfterMs: 100 });
      await within(b.peer('a').whenReady({ timeoutMs: 3000 }), 4000, 'b ready');
      const servedBefore = probeA.count('whoami');

      // refused in the handshake: connect() itself rejects, before the stranger could send a call
      const strangers = await Promise.all(
        Array.from({ length: 10 }, () =>
          connect(a.url!, { nodeName: 'stranger' }).then(
            (session) => {
              t.after(() => session.destroy());
              return session.client(Svc).whoami('let me in', { timeoutMs: 1000 }).then(() => 'served');
            },
          ).catch((error: unknown) => (error instanceof RpcError ? statusName(error.code) : String(error))),
        ),
      );
      await within(a.removePeer('b', { graceMs: 0 }), 3000, 'removePeer');
      const fromB = await b.peer('a').client(Svc).whoami('b to a', { waitForReady: true, timeoutMs: 500 }).then(
        () => 'served',
        (error: unknown) => (error instanceof RpcError ? statusName(error.code) : String(error)),
      );
      const served = probeA.contexts.filter((ctx) => ctx.method.endsWith('/whoami')).slice(servedBefore).map((ctx) => ctx.peer.nodeName);
      t.diagnostic(`strangers: ${strangers.join(',')}; b after removal: ${fromB}; a's handler served ${served.join(',') || 'nobody'}`);
      assert.deepEqual(served, [], "a's handler ran for nobody outside the mesh");
      assert.ok(strangers.every((outcome) => outcome === 'PERMISSION_DENIED'), 'every stranger was refused in the handshake');
      assert.notEqual(fromB, 'served');
    },
  );

  // Regression found by review of the token-auth work: PERMISSION_DENIED had been made a permanent dial failure, so
  // a node refused because its peer did not know it yet waited 0.5-1x maxDelayMs (about 19 s) after addPeer.
  void test('a node added to the accepting side a moment late: ready within a few backoff steps of addPeer (a membership refusal is an ordinary failed dial, warned once at once)', { timeout: 10_000 }, async (t) => {
    const a = 'a';
    const b = dialerOf(a, 'b'); // b dials a; a never dials b (its peer entry has no address)
    const urls = { a: unixUrl(t), b: unixUrl(t) };
    const logsB: string[] = [];
    const meshA = newMesh(t, { name: a, listen: urls.a, peers: {}, services: [svcService(a)] });
    // the mesh's own reconnect defaults (initialDelayMs 250, maxDelayMs 30 000), not the tests' fast ones
    const meshB = newMesh(t, { name: b, listen: urls.b, peers: { [a]: urls.a }, services: [svcService(b)], reconnect: {} }, logsB);
    await Promise.all([meshA.start(), meshB.start()]);
    await until(() => logsB.some((l) => /is not a peer of a/.test(l)), 3000, "b's first dial refused, and b warns of it at once");
    assert.equal(logsB.filter((l) => /is not a peer of a/.test(l)).length, 1, `warned once, not at every redial: ${logsB.join(' | ')}`);
    meshA.addPeer(b, null);
    const start = performance.now();
    await within(meshB.peer(a).whenReady({ timeoutMs: 5000 }), 6000, 'b ready');
    const elapsed = performance.now() - start;
    assert.ok(elapsed < 3000, `ready ${elapsed.toFixed(0)} ms after addPeer (the mesh's backoff starts at 250 ms)`);
    assert.equal((await meshB.peer(a).client(Svc).whoami('b to a')).node, a);
  });

  // Regression found by review (fixed in 0e3bab8: a mesh dialer refuses a node that is not the peer it dialed).
  void test("a mesh peer's address that leads to another node: calls meant for the peer never run there, the peer is never ready, and the log names the node that answered", { timeout: 8000 }, async (t) => {
    const a = dialerOf('b', 'a');
    const probeC = new Probe();
    const c = newMesh(t, { name: 'c', listen: unixUrl(t), peers: { [a]: null }, services: [svcService('c', probeC)] });
    await c.start();
    const logs: string[] = [];
    // a's config has b's entry pointing at c (a typo, or an address reused after a redeploy)
    const meshA = newMesh(t, { name: a, listen: unixUrl(t), peers: { b: c.url! }, services: [svcService(a)] }, logs);
    const states: string[] = [];
    meshA.on('peer', (e) => states.push(e.state));
    await meshA.start();

    const call = meshA.peer('b').client(Svc).whoami('for b', { waitForReady: true, timeoutMs: 500 });
    const outcome = await call.then(
      (answer) => `answered by node ${answer.node}`,
      (error: unknown) => (error instanceof RpcError ? statusName(error.code) : String(error)),
    );
    assert.equal(outcome, 'DEADLINE_EXCEEDED', 'a waitForReady call to b');
    assert.equal(probeC.count('whoami'), 0, 'no call meant for b ran on c');
    await until(() => logs.some((l) => l.startsWith('warn') && l.includes('"c"')), 3000, "a warn line naming node c in a's log");
    const warning = logs.find((l) => l.startsWith('warn') && l.includes('"c"'))!;
    assert.match(warning, /peer b/, warning);
    assert.notEqual(meshA.peer('b').state, 'ready');
    assert.ok(!states.includes('ready'), `a's peer b was never ready (states: ${states.join(', ')})`);
  });
});
