/**
 * Closing with calls in flight, at every level: a session's graceful close() (in-flight calls in both directions
 * complete, new ones are refused retry-safe) and destroy() (in-flight calls fail UNAVAILABLE at once); a lost
 * transport; the grace period of a server's close() and of a session's (calls outliving it fail, not retry-safe; a
 * second close() with a shorter grace; the peer's GOAWAY covering a call it never answers); a channel or a mesh closed
 * while a dial is in its handshake; and a process that exits on its own once everything is closed.
 *
 * Close under a message stream is in rpc/streams.test.ts, under a bulk transfer in rpc/bulk-connection-loss.test.ts,
 * and a channel across a graceful server restart in channel/reconnect.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

import { createMemoryPair, createSession, Status } from '../../src/index.js';
import { ConnectionCode, FrameType } from '../../src/wire/constants.js';
import { encodeGoaway } from '../../src/wire/payloads.js';
import { Bytes } from '../fixtures/bytes-service.js';
import { connectTo, newMesh, openChannel, startServer } from '../fixtures/connections.js';
import { Counted, countedService } from '../fixtures/counted-service.js';
import { Echo, echoService, type EchoHooks } from '../fixtures/echo-service.js';
import { Sleepy, sleepyService } from '../fixtures/lifecycle-service.js';
import { againstRawPeer, pingBarrier } from '../fixtures/sessions.js';
import { assertStatus, deferred, rejectsWithStatus, sleep, testConnTypes, until, watch, within } from '../helpers.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/exit-clean.ts', import.meta.url));

type HandleKind = 'TCPSocketWrap' | 'TCPServerWrap' | 'Timeout';
const HANDLE_KINDS: readonly HandleKind[] = ['TCPSocketWrap', 'TCPServerWrap', 'Timeout'];

/** Sockets, listening servers and (ref'd) timers this process holds, by libuv resource name. */
function handleCounts(): Record<HandleKind, number> {
  const counts: Record<HandleKind, number> = { TCPSocketWrap: 0, TCPServerWrap: 0, Timeout: 0 };
  for (const name of process.getActiveResourcesInfo()) if ((HANDLE_KINDS as readonly string[]).includes(name)) counts[name as HandleKind]++;
  return counts;
}

/** A TCP server that accepts and never says a word; records when each of its sockets closed. */
async function silentPeer(t: TestContext): Promise<{ url: string; sockets: Array<{ socket: Socket; closedAt: number | undefined }> }> {
  const sockets: Array<{ socket: Socket; closedAt: number | undefined }> = [];
  const server = createServer((socket) => {
    const entry = { socket, closedAt: undefined as number | undefined };
    sockets.push(entry);
    socket.on('error', () => undefined);
    socket.on('close', () => (entry.closedAt = performance.now()));
    socket.resume(); // reads (and drops) what comes, so the dialer's FIN is seen
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const { socket } of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { url: `tcp://127.0.0.1:${address.port}`, sockets };
}

// ---------------------------------------------------------------- tests

void describe('close: a session closed gracefully, destroyed, or losing its transport', () => {
  for (const closer of ['caller', 'callee'] as const) {
    testConnTypes(
      `graceful close() by the ${closer}: in-flight calls in both directions complete, new calls are UNAVAILABLE, closed resolves undefined`,
      async (env) => {
        const gate = deferred();
        let started = 0;
        const hooks: EchoHooks = { gate: gate.promise, onStart: () => started++ };
        const { caller, callee } = await env.open({ services: [echoService(hooks)], callerServices: [echoService(hooks)] });
        const forward = caller.client(Echo).gated('forward');
        const backward = callee.client(Echo).gated('backward');
        await until(() => started === 2, 2000, 'both calls are with their handlers');
        const closing = closer === 'caller' ? caller : callee;
        const other = closing === caller ? callee : caller;
        const closed = closing.close();
        await rejectsWithStatus(closing.client(Echo).echo(1), Status.UNAVAILABLE, 'new call on the closing side');
        const late = await rejectsWithStatus(other.client(Echo).echo(1), Status.UNAVAILABLE, 'new call on the other side');
        assert.equal(late.retrySafe, true, 'a call the closing side never processed is retry-safe');
        gate.resolve();
        assert.equal(await forward, 'done forward');
        assert.equal(await backward, 'done backward');
        await within(closed, 3000, 'close()');
        assert.equal(await within(caller.closed, 3000, 'caller closed'), undefined);
        assert.equal(await within(callee.closed, 3000, 'callee closed'), undefined);
        await rejectsWithStatus(other.client(Echo).echo(1), Status.UNAVAILABLE, 'a call after the close');
      },
      { timeout: 10_000 },
    );
  }

  for (const who of ['caller', 'callee'] as const) {
    testConnTypes(
      `destroy() by the ${who} fails in-flight calls with UNAVAILABLE promptly, on both sides`,
      async (env) => {
        const handlerAborted = deferred<unknown>();
        const handlerStarted = deferred();
        const { caller, callee } = await env.open({ services: [echoService({ onStart: handlerStarted.resolve, onAbort: handlerAborted.resolve })] });
        const call = caller.client(Echo).hang(null);
        await within(handlerStarted.promise, 2000, 'the handler started');
        const start = performance.now();
        (who === 'caller' ? caller : callee).destroy();
        await rejectsWithStatus(call, Status.UNAVAILABLE);
        const elapsed = performance.now() - start;
        assert.ok(elapsed < 500, `failed after ${elapsed.toFixed(1)} ms`);
        const reason = await within(handlerAborted.promise, 1000, "the handler's signal");
        assert.equal((reason as { code?: number }).code, Status.UNAVAILABLE);
        await within(Promise.all([caller.closed, callee.closed]), 3000, 'both sides closed');
        await rejectsWithStatus(caller.client(Echo).echo(1), Status.UNAVAILABLE, 'a call after destroy');
      },
      { timeout: 10_000, kinds: ['memory', 'tcp'] },
    );
  }

  void test('transport loss (memory transport destroyed underneath) fails in-flight calls with UNAVAILABLE', { timeout: 5000 }, async (t) => {
    const [a, b] = createMemoryPair();
    const caller = createSession(a, 'dialer');
    const handlerStarted = deferred();
    const callee = createSession(b, 'acceptor', { services: [echoService({ onStart: handlerStarted.resolve })] });
    t.after(() => {
      caller.destroy();
      callee.destroy();
    });
    await Promise.all([caller.ready, callee.ready]);
    const call = caller.client(Echo).hang(null);
    await within(handlerStarted.promise, 2000, 'the handler started');
    b.destroy(new Error('cable cut'));
    await rejectsWithStatus(call, Status.UNAVAILABLE);
    const error = await within(caller.closed, 1000, 'caller closed');
    assert.ok(error instanceof Error, 'closed resolves with the error that closed it');
  });
});

void describe('close: the grace period', () => {
  void test('T-S8 server.close({ graceMs: 2000 }) with 5 calls in flight: all 5 complete; a call racing the GOAWAY and one after it fail UNAVAILABLE retry-safe; closed resolves clean; no socket, server or timer is left', { timeout: 8000 }, async (t) => {
    const before = handleCounts();
    let started = 0;
    const { server, logs } = await startServer(t, { services: [sleepyService({ onStart: () => started++ })] });
    const client = await connectTo(t, server.url);
    const sleepy = client.client(Sleepy);
    const calls = Array.from({ length: 5 }, () => sleepy.sleep(300));
    const callsState = watch(Promise.all(calls));
    await until(() => started === 5, 2000, 'the 5 handlers start');

    const closing = server.close({ graceMs: 2000 });
    const racing = sleepy.sleep(1); // same tick as close(): its OPEN crosses the GOAWAY
    const raced = await rejectsWithStatus(within(racing, 2000, 'the racing call'), Status.UNAVAILABLE, 'the call racing the GOAWAY');
    assert.equal(raced.retrySafe, true, `no handler saw it, so it is retry-safe (${raced.message})`);
    const late = await rejectsWithStatus(sleepy.sleep(1), Status.UNAVAILABLE, 'a call after the GOAWAY');
    assert.equal(late.retrySafe, true, `retry-safe (${late.message})`);
    assert.equal(callsState.settled, false, 'the calls in flight are still running');

    assert.deepEqual(await within(Promise.all(calls), 3000, 'the calls in flight'), Array(5).fill('slept 300'));
    assert.equal(started, 5, 'neither refused call reached a handler');
    await within(closing, 3000, 'server.close()');
    assert.equal(await within(client.closed, 3000, 'the client session closes'), undefined, 'a clean close');
    assert.equal(server.sessions.size, 0);
    assert.deepEqual(logs, []);

    const within1s = performance.now() + 1000;
    const leftover = (): string[] => {
      const now = handleCounts();
      return HANDLE_KINDS.filter((k) => now[k] > before[k]).map((k) => `${k}: ${before[k]} before, ${now[k]} after`);
    };
    while (leftover().length > 0 && performance.now() < within1s) await sleep(10);
    assert.deepEqual(leftover(), [], 'handles left behind');
  });

  void test('a call still running when graceMs (100) expires fails UNAVAILABLE, not retry-safe (its handler ran), and its handler is aborted', { timeout: 5000 }, async (t) => {
    const aborted = deferred<unknown>();
    let started = 0;
    const { server } = await startServer(t, { services: [sleepyService({ onStart: () => started++, onAbort: (reason) => aborted.resolve(reason) })] });
    const client = await connectTo(t, server.url);
    const call = client.client(Sleepy).sleep(2000);
    await until(() => started === 1, 2000, 'the handler starts');

    const start = performance.now();
    const closing = server.close({ graceMs: 100 });
    const error = await rejectsWithStatus(within(call, 1500, 'the call in flight'), Status.UNAVAILABLE, 'the call in flight');
    const elapsed = performance.now() - start;
    assert.ok(elapsed >= 90 && elapsed < 1000, `failed ${elapsed.toFixed(0)} ms after close() (graceMs 100, handler 2000)`);
    assert.equal(error.retrySafe, false, `the handler ran: not retry-safe (${error.message})`);
    assertStatus(await within(aborted.promise, 1000, "the handler's signal"), Status.UNAVAILABLE, "the handler's abort reason");
    await within(closing, 3000, 'server.close()');
    await within(client.closed, 3000, 'the client session closes');
  });

  // Regression found by review (fixed in 0e3bab8: a shorter close() grace shortens a running one).
  void test('close({ graceMs: 5000 }) then close({ graceMs: 0 }) with a call in flight: the second resolves at once and the call fails UNAVAILABLE', { timeout: 5000 }, async (t) => {
    const counts: Record<string, number> = {};
    const { server } = await startServer(t, { services: [countedService(counts)] });
    const session = await connectTo(t, server.url);
    const call = session.client(Counted).hang(null);
    call.catch(() => undefined);
    await until(() => counts.hang === 1, 1000, 'the call to reach its handler');
    const first = session.close({ graceMs: 5000, reason: 'duplicate connection: replaced by a newer one' });
    first.catch(() => undefined);
    const start = performance.now();
    await within(session.close({ graceMs: 0 }), 1000, 'close({ graceMs: 0 }) after close({ graceMs: 5000 })');
    const ms = performance.now() - start;
    assert.ok(ms < 1000, `resolved after ${ms.toFixed(0)} ms`);
    await rejectsWithStatus(within(call, 1000, 'the call in flight'), Status.UNAVAILABLE, 'the call in flight');
    await within(first, 1000, 'the first close()');
  });

  // Regression found by review (fixed in 804d265: close() bounds a drain the peer started).
  void test("after the peer's GOAWAY NO_ERROR covering a call it never answers, close({ graceMs: 50 }) fails that call UNAVAILABLE within the grace period", { timeout: 5000 }, async (t) => {
    const { raw, session } = againstRawPeer(t, 'dialer');
    await within(session.ready, 1000, 'handshake');
    const call = watch(session.client(Bytes).echo(Uint8Array.of(1)));
    await raw.waitFor((f) => f.type === FrameType.OPEN && f.streamId === 1, 1000, 'the OPEN of stream 1');
    raw.send(FrameType.GOAWAY, 0, 0, encodeGoaway(1, ConnectionCode.NO_ERROR, 'draining')); // stream 1 was seen: not retry-safe
    await pingBarrier(raw, 1n);
    assert.equal(call.settled, false, 'the GOAWAY covers the call: it stays in flight');
    const start = performance.now();
    const closing = session.close({ graceMs: 50 });
    const error = await within(rejectsWithStatus(call.promise, Status.UNAVAILABLE, 'the leftover call'), 50 + 450, 'the leftover call');
    const elapsed = performance.now() - start;
    assert.ok(elapsed >= 40, `failed after ${elapsed.toFixed(0)} ms, before the grace period`);
    assert.equal(error.retrySafe, false, 'the peer may have processed it');
    // close() may also wait out the transport linger (2 s)
    await within(closing, 3000, 'close()');
  });
});

void describe('close: graceMs values', () => {
  // Regression (issue 9): setTimeout fires a delay past 2^31-1 ms after 1 ms, so graceMs: Infinity failed every call in flight at once.
  for (const graceMs of [Infinity, 2 ** 31]) {
    void test(`close({ graceMs: ${graceMs} }) waits until the calls in flight finish, however long: a 300 ms call completes`, { timeout: 5000 }, async (t) => {
      let started = 0;
      const { server } = await startServer(t, { services: [sleepyService({ onStart: () => started++ })] });
      const session = await connectTo(t, server.url);
      const call = session.client(Sleepy).sleep(300);
      await until(() => started === 1, 2000, 'the handler starts');
      const closing = server.close({ graceMs });
      assert.equal(await within(call, 2000, 'the call in flight'), 'slept 300');
      await within(closing, 3000, 'server.close()');
    });
  }

  void test('graceMs NaN, negative or not a number: close(), server.close(), channel.close(), mesh.stop() and removePeer() reject with a RangeError naming it, and close nothing', { timeout: 8000 }, async (t) => {
    const { server } = await startServer(t, { services: [sleepyService()] });
    const session = await connectTo(t, server.url);
    const ch = openChannel(t, server.url);
    await within(ch.whenReady(), 2000, 'the channel connects');
    const mesh = newMesh(t, { name: 'a', peers: { b: null } });
    for (const graceMs of [NaN, -1, '100' as unknown as number]) {
      const attempts: Array<[string, () => Promise<void>]> = [
        ['session.close()', () => session.close({ graceMs })],
        ['server.close()', () => server.close({ graceMs })],
        ['channel.close()', () => ch.close({ graceMs })],
        ['mesh.stop()', () => mesh.stop({ graceMs })],
        ['mesh.removePeer()', () => mesh.removePeer('b', { graceMs })],
      ];
      for (const [what, attempt] of attempts) {
        await assert.rejects(attempt(), (error: unknown) => error instanceof RangeError && /graceMs must be a number of ms, 0 or more/.test(error.message), `${what} with graceMs ${String(graceMs)}`);
      }
    }
    assert.equal(await session.client(Sleepy).sleep(1), 'slept 1', 'the session still takes calls');
    assert.equal(await ch.client(Sleepy).sleep(1), 'slept 1', 'the channel still takes calls');
    assert.deepEqual(mesh.peerNames, ['b'], 'the peer is still there');
  });
});

void describe("close: during a dial's handshake", () => {
  // Regression found by review (fixed in 0e3bab8: a dial's abort covers the handshake).
  void test('channel.close() and mesh.stop() during a dial\'s handshake with a peer that never sends HELLO close that socket at once, not after handshakeTimeoutMs', { timeout: 8000 }, async (t) => {
    const peer = await silentPeer(t);

    const ch = openChannel(t, peer.url, { handshakeTimeoutMs: 5000 });
    await until(() => peer.sockets.length === 1, 2000, 'the channel to connect to the silent peer');
    await sleep(50);
    assert.equal(ch.state, 'connecting', 'the handshake is in progress');
    const closing = performance.now();
    await within(ch.close({ graceMs: 0 }), 2000, 'channel.close()');
    await until(() => peer.sockets[0]!.closedAt !== undefined, 1500, "the channel's socket to close");
    const channelMs = peer.sockets[0]!.closedAt! - closing;
    assert.ok(channelMs < 500, `the channel's socket closed ${channelMs.toFixed(0)} ms after close()`);

    const mesh = newMesh(t, { name: 'a', peers: { b: peer.url }, fallbackDialAfterMs: 0, handshakeTimeoutMs: 5000 });
    await mesh.start();
    await until(() => peer.sockets.length === 2, 2000, 'the mesh to connect to the silent peer');
    await sleep(50);
    assert.equal(mesh.peer('b').state, 'connecting', 'the handshake is in progress');
    const stopping = performance.now();
    await within(mesh.stop({ graceMs: 0 }), 2000, 'mesh.stop()');
    await until(() => peer.sockets[1]!.closedAt !== undefined, 1500, "the mesh's socket to close");
    const meshMs = peer.sockets[1]!.closedAt! - stopping;
    assert.ok(meshMs < 500, `the mesh's socket closed ${meshMs.toFixed(0)} ms after stop()`);
    assert.equal(peer.sockets.length, 2, 'no dial after close');
  });
});

void describe('close: nothing is left behind', () => {

  void test('T-S8 after mesh.stop(), channel.close() and server.close() with calls in flight, the process exits on its own', { timeout: 20_000 }, async (t) => {
    const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.once('exit', (code) => resolve({ code, at: performance.now() })));
    let stoppedAt = 0;
    await within(
      new Promise<void>((resolve) => child.stdout.on('data', () => stdout.includes('stopped') && ((stoppedAt ||= performance.now()), resolve()))),
      15_000,
      `the fixture to stop everything (stderr: ${stderr})`,
    );
    assert.match(stdout, /stopped \["fulfilled","fulfilled","fulfilled"\]/, 'the calls in flight finished within the grace');
    const { code, at } = await within(exited, 3000, 'the process to exit on its own after shutting down (something kept it alive)');
    assert.equal(code, 0, `exit code (stderr: ${stderr})`);
    t.diagnostic(`exited ${(at - stoppedAt).toFixed(0)} ms after "stopped"`);
  });
});
