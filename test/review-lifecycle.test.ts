/**
 * Regression tests for the lifecycle findings of the fourth review, fixed in "fixes from review: mesh.stop() during
 * start() ..." (0e3bab8). One test per finding, named after the scenario, asserting what a user relies on. Each was
 * checked to fail on the code before that commit (a7213e0).
 */
import assert from 'node:assert/strict';
import { createConnection, createServer, type Server as NetServer, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';

import { RpcError, statusName } from '../src/index.js';
import { dialerOf, newMesh, unixUrl } from './fixtures/connections.js';
import { Probe, Svc, svcService } from './fixtures/mesh-service.js';
import { until, within } from './helpers.js';

const CLEANUP_MS = 3000;

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

// ---------------------------------------------------------------- 1. mesh.stop() during start()

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

// ---------------------------------------------------------------- 3. a dialer reaching the wrong node

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

// ---------------------------------------------------------------- 10. a blackholed connection vs a fresh one

/** A TCP proxy to `targetPort` that, once `blackhole` is set, drops every byte both ways without closing anything. */
async function blackholeProxy(t: TestContext, targetPort: () => number): Promise<{ url: string; blackhole: boolean }> {
  const sockets = new Set<Socket>();
  const state = { url: '', blackhole: false };
  const server: NetServer = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort() });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        sockets.delete(socket);
        if (!state.blackhole) {
          client.destroy();
          upstream.destroy();
        }
      });
    }
    client.on('data', (bytes) => void (state.blackhole || upstream.write(bytes)));
    upstream.on('data', (bytes) => void (state.blackhole || client.write(bytes)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  state.url = `tcp://127.0.0.1:${address.port}`;
  return state;
}

void test("the designated dialer's connection goes silently dead (blackholed) and the peer restarts and dials in: the new connection replaces the dead one within 4 s and calls work (keepalive 60 s)", { timeout: 10_000 }, async (t) => {
  const A = 'a';
  const D = dialerOf(A, 'd');
  const common = { reconnect: { initialDelayMs: 50, maxDelayMs: 500 }, fallbackDialAfterMs: 200, keepaliveIntervalMs: 60_000 };
  let aPort = 0;
  const proxy = await blackholeProxy(t, () => aPort);
  const oldA = newMesh(t, { name: A, listen: 'tcp://127.0.0.1:0', peers: { [D]: null }, services: [svcService('old a')], ...common });
  await oldA.start();
  aPort = Number(new URL(oldA.url!).port);
  const meshD = newMesh(t, { name: D, listen: 'tcp://127.0.0.1:0', peers: { [A]: proxy.url }, services: [svcService(D)], ...common });
  await meshD.start();
  assert.equal((await meshD.peer(A).client(Svc).whoami('first', { waitForReady: true, timeoutMs: 3000 })).node, 'old a');

  // a's host loses the connection silently, and a comes back as a new process that dials d itself
  proxy.blackhole = true;
  await within(oldA.stop({ graceMs: 0 }), CLEANUP_MS, 'the old a to stop');
  const dead = [...(meshD.peer(A).sessions.get('control') ?? [])];
  assert.equal(dead.length, 1);
  const newA = newMesh(t, { name: A, listen: 'tcp://127.0.0.1:0', peers: { [D]: meshD.url! }, services: [svcService('new a')], ...common });
  const restarted = performance.now();
  await newA.start();

  const replaced = (): boolean => {
    const sessions = [...(meshD.peer(A).sessions.get('control') ?? [])];
    return sessions.length === 1 && sessions[0] !== dead[0] && meshD.peer(A).state === 'ready';
  };
  await until(replaced, 4500, "d's connection to a replaced by the new one");
  t.diagnostic(`replaced ${(performance.now() - restarted).toFixed(0)} ms after the restart`);
  const answer = await meshD.peer(A).client(Svc).whoami('after', { timeoutMs: 1000 }).catch((error: unknown) => {
    assert.ok(error instanceof RpcError);
    return assert.fail(`d -> a failed: ${statusName(error.code)} ${error.message}`);
  });
  assert.equal(answer.node, 'new a');
});

void test('the same, but the new connection goes away again during the ping check: the link does not stay "ready" with no connection; it redials and reaches the next incarnation', { timeout: 15_000 }, async (t) => {
  const A = 'a';
  const D = dialerOf(A, 'd');
  const common = { reconnect: { initialDelayMs: 50, maxDelayMs: 500 }, fallbackDialAfterMs: 200, keepaliveIntervalMs: 60_000 };
  let aPort = 0;
  const proxy = await blackholeProxy(t, () => aPort);
  const a1 = newMesh(t, { name: A, listen: 'tcp://127.0.0.1:0', peers: { [D]: null }, services: [svcService('a1')], ...common });
  await a1.start();
  aPort = Number(new URL(a1.url!).port);
  const meshD = newMesh(t, { name: D, listen: 'tcp://127.0.0.1:0', peers: { [A]: proxy.url }, services: [svcService(D)], ...common });
  await meshD.start();
  assert.equal((await meshD.peer(A).client(Svc).whoami('first', { waitForReady: true, timeoutMs: 3000 })).node, 'a1');

  proxy.blackhole = true;
  await within(a1.stop({ graceMs: 0 }), CLEANUP_MS, 'a1 to stop');
  const [dead] = [...(meshD.peer(A).sessions.get('control') ?? [])];
  // a2 dials d and goes away again while d is still checking its dead connection (3 s ping check)
  const a2 = newMesh(t, { name: A, listen: 'tcp://127.0.0.1:0', peers: { [D]: meshD.url! }, services: [svcService('a2')], ...common });
  await a2.start();
  await until(() => (meshD.peer(A).sessions.get('control')?.size ?? 0) === 2, 3000, 'a2 offered d a second connection');
  await within(a2.stop({ graceMs: 0 }), CLEANUP_MS, 'a2 to stop');
  // a3 waits to be dialed, at the address d dials
  const a3 = newMesh(t, { name: A, listen: 'tcp://127.0.0.1:0', peers: { [D]: null }, services: [svcService('a3')], ...common });
  await a3.start();
  aPort = Number(new URL(a3.url!).port);
  proxy.blackhole = false;
  // a call made while d still believed in the dead connection would fail with it: wait until d knows
  await until(() => !(meshD.peer(A).sessions.get('control')?.has(dead!) ?? false), 5000, 'd to drop the dead connection');
  const answer = await meshD.peer(A).client(Svc).whoami('after', { waitForReady: true, timeoutMs: 8000 });
  assert.equal(answer.node, 'a3');
});
