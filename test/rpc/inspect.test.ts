/**
 * The `inspect` option in process: `gridwire.inspect.v1/snapshot` shows the connections, their streams and credit,
 * the calls in flight, and names a stalled stream (a download whose reader never reads, held past a short
 * threshold) on both sides, with the slow side; the stall watch logs it once; over TLS the peer's certificate;
 * `authorize` sees the inspect method and can refuse it; a side without inspect answers UNIMPLEMENTED; a bad threshold
 * is refused where options are checked.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { test } from 'node:test';

import { connect, InspectService, listen, Status, type InspectSnapshot, type LogLevel } from '../../src/index.js';
import { deferred, rejectsWithStatus, sleep, until, within } from '../helpers.js';
import { testPki } from '../fixtures/certs.js';
import { Probe, probeService } from '../fixtures/stats-service.js';
import { clientTls, startTlsServer } from '../fixtures/tls.js';

const MiB = 1024 * 1024;
const THRESHOLD_MS = 150;

/** Takes snapshots until one satisfies `done` (polled, bounded at `ms`: how long that takes depends on the machine). */
async function snapshotWhen(take: () => Promise<InspectSnapshot>, done: (snapshot: InspectSnapshot) => boolean, ms: number, what: string): Promise<InspectSnapshot> {
  const end = performance.now() + ms;
  for (;;) {
    const snapshot = await take();
    if (done(snapshot)) return snapshot;
    if (performance.now() > end) assert.fail(`${what}: not seen within ${ms} ms; the last snapshot: ${JSON.stringify(snapshot)}`);
    await sleep(20);
  }
}

function recorder(): { lines: string[]; log: (level: LogLevel, message: string) => void } {
  const lines: string[] = [];
  return { lines, log: (level, message) => level === 'warn' && lines.push(message) };
}

void test('inspect names a download whose reader never reads as stalled, on both sides, and the watch logs it once', { timeout: 20_000 }, async (t) => {
  const release = deferred();
  const serverLog = recorder();
  const server = await listen('tcp://127.0.0.1:0', {
    nodeName: 'source', services: [probeService({ release: release.promise })], inspect: { stallThresholdMs: THRESHOLD_MS }, log: serverLog.log,
  });
  t.after(() => server.close({ graceMs: 0 }));
  const clientLog = recorder();
  const client = await connect(server.url, { nodeName: 'sink', inspect: { stallThresholdMs: THRESHOLD_MS }, log: clientLog.log });
  t.after(() => client.destroy());

  const probe = client.client(Probe);
  const held = probe.hold(null); // a call in flight, for the in-flight table
  const download = probe.get({ bytes: 256 * MiB })[Symbol.asyncIterator]();
  await within(download.next(), 2000, 'the first chunk'); // then never read again: the windows fill up and stay full

  const inspect = client.client(InspectService);
  const snapshot = await snapshotWhen(() => inspect.snapshot({}), (s) => s.stalled.length > 0, 5000, 'the download stalled past the threshold');
  assert.equal(snapshot.node, 'source');
  assert.equal(snapshot.stallThresholdMs, THRESHOLD_MS);
  assert.equal(snapshot.connections.length, 1);
  const connection = snapshot.connections[0]!;
  assert.equal(connection.peer.nodeName, 'sink');
  assert.equal(connection.role, 'acceptor');
  assert.equal(connection.phase, 'open');
  assert.ok(connection.bytesOut > 128 * 1024, `a window of the download's bytes went out: ${connection.bytesOut}`);
  assert.ok(connection.sendCredit > 0 && connection.sendCredit < 16 * MiB, `the connection's credit, partly spent: ${connection.sendCredit}`);
  const [stall] = snapshot.stalled;
  assert.ok(stall !== undefined, `a stall is found: ${JSON.stringify(snapshot)}`);
  assert.deepEqual({ ...stall, blockedMs: 0 }, { connection: `sink (${connection.peer.address})`, streamId: stall.streamId, method: 'test.probe.v1/get', direction: 'served', blockedMs: 0, slowSide: 'peer' });
  assert.ok(stall.blockedMs >= THRESHOLD_MS, `blocked past the threshold: ${stall.blockedMs}`);
  const stream = connection.streams[0]!;
  assert.equal(stream.id, stall.streamId, 'the stalled stream is listed first');
  assert.equal(stream.kind, 'download');
  assert.ok(stream.stalled !== undefined && stream.blockedMs >= THRESHOLD_MS && stream.queuedBytes > 0, JSON.stringify(stream));
  assert.ok(stream.sendCredit < 64 * 1024, `little or no credit left: ${stream.sendCredit}`);
  assert.ok(stream.ageMs !== undefined && stream.ageMs >= stream.blockedMs);
  assert.deepEqual(snapshot.inFlight['test.probe.v1/hold'], { made: 0, served: 1 });
  assert.deepEqual(snapshot.inFlight['test.probe.v1/get'], { made: 0, served: 1 });

  // the watch logged the stall once, naming the stream, the method and the slow side
  await until(() => serverLog.lines.length > 0, 5000, 'the stall warning');
  await sleep(THRESHOLD_MS); // about four turns of the watch, to see that it does not log again (load can only hide a repeat, not make one)
  const stallLines = serverLog.lines.filter((line) => line.includes('flow-control credit'));
  assert.equal(stallLines.length, 1, stallLines.join('\n'));
  assert.match(stallLines[0]!, new RegExp(`stream ${stall.streamId} \\(test\\.probe\\.v1/get, served by this side\\).*node "sink".*slow side: the peer`));

  // the reading side sees its own reader as the slow one
  const [serverSide] = [...server.sessions];
  const mirror = await snapshotWhen(() => serverSide!.client(InspectService).snapshot({}), (m) => m.stalled.length > 0, 5000, 'the reading side sees the stall');
  const local = mirror.stalled.find((s) => s.method === 'test.probe.v1/get');
  assert.ok(local !== undefined && local.slowSide === 'local' && local.direction === 'made', JSON.stringify(mirror.stalled));
  await until(() => clientLog.lines.some((line) => line.includes('slow side: this one')), 5000, 'the reading side warns too');

  release.resolve();
  await held;
  await download.return?.();
});

void test('inspect: streams that move are not stalled, and the threshold is the option', { timeout: 20_000 }, async (t) => {
  const server = await listen('tcp://127.0.0.1:0', { services: [probeService()], inspect: true, log: () => {} });
  t.after(() => server.close({ graceMs: 0 }));
  const client = await connect(server.url, { log: () => {} });
  t.after(() => client.destroy());
  const download = client.client(Probe).get({ bytes: 256 * MiB })[Symbol.asyncIterator]();
  await download.next();
  const inspect = client.client(InspectService);
  const isBlocked = (snapshot: InspectSnapshot) => snapshot.connections[0]!.streams.some((s) => s.method === 'test.probe.v1/get' && s.blockedMs > 0);
  const snapshot = await snapshotWhen(() => inspect.snapshot({}), isBlocked, 5000, 'the download blocked on credit');
  assert.equal(snapshot.stallThresholdMs, 5000, 'the default threshold');
  const [blocked] = snapshot.connections[0]!.streams.filter((s) => s.method === 'test.probe.v1/get');
  assert.ok(blocked!.blockedMs < 5000, 'seen soon after it blocked');
  assert.deepEqual(snapshot.stalled, [], 'blocked for less than 5 s: not stalled yet');
  await download.return?.();
});

void test('authorize sees gridwire.inspect.v1/snapshot like any method and can refuse it', { timeout: 20_000 }, async (t) => {
  const asked: string[] = [];
  const server = await listen('tcp://127.0.0.1:0', {
    services: [probeService()],
    inspect: true,
    authorize: (ctx) => {
      asked.push(ctx.method);
      return ctx.method.startsWith('gridwire.inspect.v1/') ? 'inspect is for operators only' : true;
    },
    log: () => {},
  });
  t.after(() => server.close({ graceMs: 0 }));
  const client = await connect(server.url, { log: () => {} });
  t.after(() => client.destroy());
  assert.equal(await client.client(Probe).echo('ok'), 'ok');
  const error = await rejectsWithStatus(client.client(InspectService).snapshot({}), Status.PERMISSION_DENIED);
  assert.match(error.message, /inspect is for operators only/);
  assert.deepEqual(asked, ['test.probe.v1/echo', 'gridwire.inspect.v1/snapshot']);
});

void test('a side without inspect answers UNIMPLEMENTED; a bad threshold is refused before anything listens', { timeout: 20_000 }, async (t) => {
  const server = await listen('tcp://127.0.0.1:0', { services: [probeService()], log: () => {} });
  t.after(() => server.close({ graceMs: 0 }));
  const client = await connect(server.url, { log: () => {} });
  t.after(() => client.destroy());
  await rejectsWithStatus(client.client(InspectService).snapshot({}), Status.UNIMPLEMENTED);
  await assert.rejects(listen('tcp://127.0.0.1:0', { inspect: { stallThresholdMs: 0 } }), RangeError);
  await assert.rejects(connect(server.url, { inspect: 'yes' as never }), TypeError);
});

void test('inspect over mutual TLS names the peer by its verified certificate (subject and SHA-256 fingerprint)', { timeout: 20_000 }, async (t) => {
  const { server } = await startTlsServer(t, { services: [probeService()], inspect: true });
  const client = await connect(server.url, { tls: clientTls(), log: () => {} });
  t.after(() => client.destroy());
  const snapshot = await client.client(InspectService).snapshot({});
  const identity = snapshot.connections[0]!.peer.identity;
  const expected = new X509Certificate(testPki().client.cert);
  assert.equal(snapshot.connections[0]!.peer.transport, 'tls');
  assert.equal(identity?.fingerprint256, expected.fingerprint256);
  assert.ok(identity !== undefined && identity.subject.length > 0 && expected.subject.includes(identity.subject), `${identity?.subject} in ${expected.subject}`);
});
