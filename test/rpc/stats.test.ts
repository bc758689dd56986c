/**
 * session.stats() and server.stats() count what happened: calls by method, status and direction (made by this side,
 * served by it) for unary, message streams and bulk, errors by status, calls in flight while one is held, an unknown
 * method under one `unknown` label, bytes both ways, and a server's counts kept after its sessions close.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';

import { channel, connect, listen, Status, type CallCounts, type RpcSession, type Server } from '../../src/index.js';
import { defineService, unary } from '../../src/index.js';
import { deferred, rejectsWithStatus, until, within } from '../helpers.js';
import { Probe, probeService } from '../fixtures/stats-service.js';

async function pair(t: TestContext, release?: Promise<void>): Promise<{ server: Server; client: RpcSession }> {
  const server = await listen('tcp://127.0.0.1:0', { services: [probeService({ release })], log: () => {} });
  t.after(() => server.close({ graceMs: 0 }));
  // the client serves the probe too: the server calls back into it (calls in both directions on one connection)
  const client = await connect(server.url, { services: [probeService()], log: () => {} });
  t.after(() => client.destroy());
  await until(() => server.sessions.size === 1, 2000, 'the server holds the session');
  return { server, client };
}

function counts(started: number, byStatus: Record<string, number>, inFlight = 0): CallCounts {
  const errors = Object.entries(byStatus).reduce((sum, [name, n]) => (name === 'OK' ? sum : sum + n), 0);
  return { started, inFlight, errors, byStatus };
}

void test('stats count unary calls and errors by status and method, both directions, on both sides', { timeout: 20_000 }, async (t) => {
  const { server, client } = await pair(t);
  const probe = client.client(Probe);
  for (let i = 0; i < 5; i++) assert.equal(await probe.echo(`hi ${i}`), `hi ${i}`);
  await rejectsWithStatus(probe.fail({ status: Status.NOT_FOUND }), Status.NOT_FOUND);
  await rejectsWithStatus(probe.fail({ status: Status.NOT_FOUND }), Status.NOT_FOUND);
  await rejectsWithStatus(probe.fail({ status: Status.PERMISSION_DENIED }), Status.PERMISSION_DENIED);
  // the server calls back into the client on the same connection
  const [serverSide] = [...server.sessions];
  assert.equal(await serverSide!.client(Probe).echo('back'), 'back');

  const mine = client.stats();
  assert.deepEqual(mine.calls.methods['test.probe.v1/echo'], { made: counts(5, { OK: 5 }), served: counts(1, { OK: 1 }) });
  assert.deepEqual(mine.calls.methods['test.probe.v1/fail'], { made: counts(3, { NOT_FOUND: 2, PERMISSION_DENIED: 1 }), served: counts(0, {}) });
  assert.deepEqual(mine.calls.made, counts(8, { OK: 5, NOT_FOUND: 2, PERMISSION_DENIED: 1 }));
  assert.deepEqual(mine.calls.served, counts(1, { OK: 1 }));
  assert.equal(mine.connections, 1);

  const theirs = serverSide!.stats();
  assert.deepEqual(theirs.calls.served, counts(8, { OK: 5, NOT_FOUND: 2, PERMISSION_DENIED: 1 }));
  assert.deepEqual(theirs.calls.made, counts(1, { OK: 1 }));
  // bytes: what one side wrote the other read (all of it has arrived once the last call answered both ways)
  await until(() => client.stats().bytesOut === serverSide!.stats().bytesIn, 2000, 'bytes in flight arrive');
  const after = client.stats();
  assert.ok(after.bytesOut > 8 * 20 && after.bytesIn > 8 * 20, `bytes counted: ${after.bytesOut} out, ${after.bytesIn} in`);
  assert.equal(JSON.parse(JSON.stringify(after)).calls.made.started, 8, 'JSON-able as it is');
});

void test('stats count message streams and bulk downloads by method, with their statuses', { timeout: 20_000 }, async (t) => {
  const { client } = await pair(t);
  const probe = client.client(Probe);
  const items: number[] = [];
  for await (const n of probe.list({ count: 10 })) items.push(n);
  assert.equal(items.length, 10);
  let bytes = 0;
  for await (const chunk of probe.get({ bytes: 1024 * 1024 })) bytes += chunk.length;
  assert.equal(bytes, 1024 * 1024);
  // a reader that stops early cancels its call: counted as CANCELLED on this side
  for await (const _ of probe.list({ count: 100_000 })) break; // more than a message window: not over yet
  const stats = client.stats();
  assert.deepEqual(stats.calls.methods['test.probe.v1/list']!.made, counts(2, { OK: 1, CANCELLED: 1 }));
  assert.deepEqual(stats.calls.methods['test.probe.v1/get']!.made, counts(1, { OK: 1 }));
  assert.ok(stats.bytesIn >= 1024 * 1024, `the download's bytes are counted in: ${stats.bytesIn}`);
});

void test('stats show a held call in flight on both sides until it finishes', { timeout: 20_000 }, async (t) => {
  const release = deferred();
  const { server, client } = await pair(t, release.promise);
  const held = client.client(Probe).hold(null);
  const [serverSide] = [...server.sessions];
  await until(() => serverSide!.stats().calls.served.inFlight === 1, 2000, 'the server is running the held call');
  assert.deepEqual(client.stats().calls.methods['test.probe.v1/hold']!.made, counts(1, {}, 1));
  assert.equal(client.stats().streamsOpen, 1);
  assert.equal(server.stats().totals.calls.served.inFlight, 1);
  release.resolve();
  assert.equal(await within(held, 2000, 'the held call'), 'released');
  assert.deepEqual(client.stats().calls.methods['test.probe.v1/hold']!.made, counts(1, { OK: 1 }));
  await until(() => serverSide!.stats().calls.served.inFlight === 0, 2000, 'the server finished it');
});

void test('a method the peer names that this side does not serve counts under one `unknown` label', { timeout: 20_000 }, async (t) => {
  const { server, client } = await pair(t);
  for (const name of ['a', 'b', 'c']) {
    const Made = defineService(`made.up.${name}`, { x: unary<null, null>() });
    await rejectsWithStatus(client.client(Made).x(null), Status.UNIMPLEMENTED);
  }
  const served = server.stats().totals.calls;
  assert.deepEqual(Object.keys(served.methods), ['unknown']);
  assert.deepEqual(served.methods.unknown!.served, counts(3, { UNIMPLEMENTED: 3 }));
  // on the calling side the methods are its own definitions
  assert.equal(client.stats().calls.made.byStatus.UNIMPLEMENTED, 3);
});

void test('server.stats() keeps what closed sessions counted, and lists the open ones with their peers', { timeout: 20_000 }, async (t) => {
  const { server, client } = await pair(t);
  await client.client(Probe).echo('one');
  const second = await connect(server.url, { nodeName: 'second', log: () => {} });
  t.after(() => second.destroy());
  await second.client(Probe).echo('two');
  await until(() => server.sessions.size === 2, 2000, 'two sessions');
  const both = server.stats();
  assert.equal(both.totals.connections, 2);
  assert.equal(both.sessions.length, 2);
  assert.deepEqual(both.sessions.map((s) => s.peer.nodeName).sort(), ['', 'second'].sort());
  assert.equal(both.totals.calls.served.byStatus.OK, 2);
  await second.close();
  await until(() => server.sessions.size === 1, 2000, 'the second session closed');
  const after = server.stats();
  assert.equal(after.totals.connections, 1);
  assert.equal(after.totals.calls.served.byStatus.OK, 2, 'the closed session still counts');
  assert.ok(after.totals.bytesIn >= both.totals.bytesIn);
});

void test('channel.stats() sums every connection the channel has had: counts survive a redial', { timeout: 20_000 }, async (t) => {
  const { server } = await pair(t);
  const ch = channel(server.url, { log: () => {}, reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
  t.after(() => ch.close({ graceMs: 0 }));
  const first = await ch.whenReady({ timeoutMs: 2000 });
  await ch.client(Probe).echo('one');
  first.destroy(); // the connection is lost; the channel redials
  await until(() => ch.session !== undefined && ch.session !== first, 5000, 'a new connection');
  await ch.client(Probe).echo('two');
  const stats = ch.stats();
  assert.equal(stats.calls.made.byStatus.OK, 2, JSON.stringify(stats.calls.made));
  assert.equal(stats.connections, 1);
});
