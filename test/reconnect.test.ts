/**
 * Channels that stay connected: waiting for a server that starts late (waitForReady) against failing fast in
 * backoff; a server process SIGKILLed in the middle of a unary call, a message stream and a download, then started
 * again on the same address; transparent retry (once, only for calls no handler saw); a graceful server restart
 * racing calls; and 200 clients coming back after a restart, spread over time by the loss jitter.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';

import {
  channel,
  createSession,
  listen,
  RpcError,
  Status,
  statusName,
  type Channel,
  type ChannelOptions,
  type Client,
  type RpcSession,
  type Server,
  type ServiceImpl,
} from '../src/index.js';
import { SocketTransport } from '../src/transport/socket.js';
import { ConnectionCode, FrameType, Flag } from '../src/wire/constants.js';
import { encodeFrame } from '../src/wire/frame.js';
import { encodeGoaway, encodeReset } from '../src/wire/payloads.js';
import { frameSplitter } from './fixtures/frame-proxy.js';
import { Probe, Svc, svcService } from './fixtures/mesh-service.js';
import { spawnServer } from './fixtures/spawn-node.js';
import { deferred, helloFrame, rejectsWithStatus, sleep, socketPath, until, within } from './helpers.js';

type SvcClient = Client<typeof Svc.methods>;

const FAST: ChannelOptions['reconnect'] = { initialDelayMs: 20, maxDelayMs: 200, lossSpreadMs: 50 };
const quiet = (): void => undefined;
const CLEANUP_MS = 3000;

/** A Unix socket address, removed after the test. */
function unixUrl(t: TestContext): string {
  const path = socketPath();
  t.after(() => rm(path, { force: true }));
  return `unix://${path}`;
}

function openChannel(t: TestContext, url: string, options: ChannelOptions = {}): Channel {
  const ch = channel(url, { reconnect: FAST, log: quiet, ...options });
  t.after(() => within(ch.close({ graceMs: 0 }), CLEANUP_MS, 'channel close'));
  return ch;
}

async function listenAfter(t: TestContext, url: string, services: ServiceImpl[], options: { maxConcurrentStreams?: number } = {}): Promise<Server> {
  const server = await listen(url, { services, log: quiet, ...options });
  t.after(async () => {
    for (const s of server.sessions) s.destroy();
    await within(server.close({ graceMs: 0 }), CLEANUP_MS, 'server close');
  });
  return server;
}

function assertStatus(error: unknown, code: Status, what: string): asserts error is RpcError {
  assert.ok(error instanceof RpcError, `${what}: expected an RpcError, got ${String(error)}`);
  assert.equal(error.code, code, `${what}: expected ${statusName(code)}, got ${statusName(error.code)} (${error.message})`);
}

/** Runs `action` and returns the error it threw (fails if it did not throw). */
async function errorOf(action: () => Promise<unknown>): Promise<unknown> {
  try {
    await action();
  } catch (error) {
    return error;
  }
  assert.fail('expected a rejection');
}

// ---------------------------------------------------------------- a server that starts late

void describe('reconnect: waiting for a server', () => {
  void test('a waitForReady call made before the server exists succeeds once it listens 300 ms later; fail-fast calls in backoff fail UNAVAILABLE retrySafe at once', { timeout: 10_000 }, async (t) => {
    const url = unixUrl(t);
    const ch = openChannel(t, url);
    const states: string[] = [];
    ch.on('state', (e) => states.push(e.state));
    const client = ch.client(Svc);
    const start = performance.now();
    const waiting = client.whoami('early', { waitForReady: true, timeoutMs: 5000 });
    const waitingStream = client.ticks({ count: 3 }, { waitForReady: true, timeoutMs: 5000 });
    const collected = (async () => {
      const got: number[] = [];
      for await (const n of waitingStream) got.push(n);
      return got;
    })();

    await until(() => ch.state === 'backoff', 2000, 'the channel in backoff (nothing listens yet)');
    const failStart = performance.now();
    const error = await rejectsWithStatus(client.whoami('fail-fast'), Status.UNAVAILABLE, 'a fail-fast call in backoff');
    assert.ok(performance.now() - failStart < 50, `at once (${(performance.now() - failStart).toFixed(1)} ms)`);
    assert.equal(error.retrySafe, true, 'never sent, so retry-safe');
    assert.match(error.message, /not connected/);
    const streamError = await errorOf(async () => {
      for await (const n of client.ticks({ count: 1 })) void n;
    });
    assertStatus(streamError, Status.UNAVAILABLE, 'a fail-fast stream in backoff');
    assert.equal(streamError.retrySafe, true);
    // a waitForReady call whose deadline passes first
    await rejectsWithStatus(client.whoami('too short', { waitForReady: true, timeoutMs: 100 }), Status.DEADLINE_EXCEEDED, 'a short waitForReady');

    const elapsed = performance.now() - start;
    await sleep(Math.max(0, 300 - elapsed));
    const listenedAt = performance.now();
    await listenAfter(t, url, [svcService('late')]);
    const answer = await within(waiting, 3000, 'the waiting call');
    assert.equal(answer.node, 'late');
    assert.ok(performance.now() - start >= 300, 'it could only succeed after the server started');
    assert.deepEqual(await within(collected, 3000, 'the waiting stream'), [0, 1, 2]);
    // FAST backoff caps the redial delay at 200 ms
    assert.ok(performance.now() - listenedAt < 1000, `connected ${(performance.now() - listenedAt).toFixed(0)} ms after the server started`);
    assert.equal(ch.state, 'ready');
    assert.ok(states.includes('backoff') && states.includes('connecting') && states.at(-1) === 'ready', `states: ${states.join(',')}`);
    assert.equal((await client.whoami('now')).node, 'late', 'fail-fast calls work once connected');
  });
});

// ---------------------------------------------------------------- the server process is killed

void describe('reconnect: the server process is SIGKILLed mid-call, then started again on the same address', () => {
  const cases = {
    'a unary call': async (client: SvcClient, handlerStarted: Promise<void>, kill: () => number) => {
      const call = client.hang(null);
      call.catch(() => undefined);
      await handlerStarted;
      const killedAt = kill();
      const error = await errorOf(() => call);
      return { error, killedAt };
    },
    'a server stream': async (client: SvcClient, handlerStarted: Promise<void>, kill: () => number) => {
      const stream = client.ticks({ count: 2, hang: true });
      const got: number[] = [];
      let killedAt = 0;
      const error = await errorOf(async () => {
        for await (const n of stream) {
          got.push(n);
          if (got.length === 2) {
            await handlerStarted;
            killedAt = kill();
          }
        }
      });
      assert.deepEqual(got, [0, 1]);
      return { error, killedAt };
    },
    'a bulk download': async (client: SvcClient, handlerStarted: Promise<void>, kill: () => number) => {
      let bytes = 0;
      let killedAt = 0;
      const error = await errorOf(async () => {
        for await (const chunk of client.get({ bytes: 0 })) {
          bytes += chunk.length;
          if (bytes >= 2 * 1024 * 1024 && killedAt === 0) {
            await handlerStarted;
            killedAt = kill();
          }
        }
      });
      assert.ok(bytes >= 2 * 1024 * 1024);
      return { error, killedAt };
    },
  };

  for (const [name, run] of Object.entries(cases)) {
    void test(`${name}: fails UNAVAILABLE within 1 s of the kill (no retry: a handler saw it); a new call succeeds on the restarted server`, { timeout: 20_000 }, async (t) => {
      const url = unixUrl(t);
      const first = await spawnServer(t, url);
      const ch = openChannel(t, url);
      await within(ch.whenReady(), 3000, 'the channel to connect');
      const client = ch.client(Svc);
      const from = first.events.length;
      const handlerStarted = first.next((e) => e.event === 'handler', 5000, 'the handler to start', from).then(() => undefined);
      const kill = (): number => {
        first.child.kill('SIGKILL');
        return performance.now();
      };
      const { error, killedAt } = await within(run(client, handlerStarted, kill), 5000, name);
      const failedAfter = performance.now() - killedAt;
      assert.ok(killedAt > 0, 'the child was killed');
      assertStatus(error, Status.UNAVAILABLE, name);
      assert.ok(failedAfter < 1000, `failed ${failedAfter.toFixed(0)} ms after the kill`);
      assert.equal(error.retrySafe, false, 'a handler saw the call: not retry-safe');
      assert.equal(first.events.filter((e) => e.event === 'handler').length, 1, 'the handler ran once: no retry');
      await first.exited;

      const second = await spawnServer(t, url);
      const answer = await within(client.whoami('again', { waitForReady: true, timeoutMs: 10_000 }), 11_000, 'a call after the restart');
      assert.equal(answer.pid, second.child.pid, 'answered by the new process');
      assert.equal(ch.state, 'ready');
      assert.equal(second.events.filter((e) => e.event === 'handler').length, 1, 'only the new call reached the new server');
    });
  }
});

// ---------------------------------------------------------------- transparent retry

/** A Unix socket server that hands each connection to `onSocket`; its sockets are destroyed and it closes after the test. */
async function rawUnixServer(t: TestContext, onSocket: (socket: Socket) => void): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    onSocket(socket);
  });
  const url = unixUrl(t);
  await new Promise<void>((resolve) => server.listen(new URL(url).pathname, resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return url;
}

/**
 * A raw server that speaks HELLO and refuses every stream (RESET REFUSED, UNAVAILABLE), counting OPENs by method.
 */
async function refuseEverything(t: TestContext): Promise<{ url: string; opens: Map<number, number>; total(): number }> {
  const opens = new Map<number, number>();
  const url = await rawUnixServer(t, (socket) => {
    socket.write(helloFrame({ nodeName: 'refuser' }));
    socket.on(
      'data',
      frameSplitter((header) => {
        if (header.type !== FrameType.OPEN) return;
        opens.set(header.streamId, (opens.get(header.streamId) ?? 0) + 1);
        socket.write(encodeFrame({ type: FrameType.RESET, flags: Flag.REFUSED, streamId: header.streamId, payload: encodeReset(Status.UNAVAILABLE, 'refused by the test') }));
      }),
    );
  });
  return { url, opens, total: () => [...opens.values()].reduce((a, b) => a + b, 0) };
}

void describe('reconnect: transparent retry', () => {
  void test('a peer that refuses every stream: unary, server stream and download are sent exactly twice (one retry) and fail UNAVAILABLE retrySafe; upload is sent once', { timeout: 10_000 }, async (t) => {
    const refuser = await refuseEverything(t);
    const ch = openChannel(t, refuser.url);
    await within(ch.whenReady(), 3000, 'the channel to connect');
    const client = ch.client(Svc);
    const attempts = async (what: string, action: () => Promise<unknown>, expected: number): Promise<void> => {
      const before = refuser.total();
      const error = await within(errorOf(action), 3000, what);
      assertStatus(error, Status.UNAVAILABLE, what);
      assert.equal(error.retrySafe, true, `${what}: refused, so retry-safe`);
      assert.equal(refuser.total() - before, expected, `${what}: OPENs sent`);
    };
    await attempts('unary', () => client.whoami('x'), 2);
    await attempts('unary with waitForReady', () => client.whoami('x', { waitForReady: true, timeoutMs: 2000 }), 2);
    await attempts('server stream', async () => {
      for await (const n of client.ticks({ count: 1 })) void n;
    }, 2);
    await attempts('download', async () => {
      for await (const chunk of client.get({ bytes: 10 })) void chunk;
    }, 2);
    await attempts('upload (its body cannot be replayed)', () => client.put({ name: 'x' }, [new Uint8Array(10)]), 1);
    assert.ok([...refuser.opens.values()].every((n) => n === 1), 'each attempt is a new stream');
    assert.equal(ch.state, 'ready', 'refusals do not drop the connection');
  });

  const sawIt = {
    'the connection is destroyed': (server: Server) => {
      for (const s of server.sessions) s.destroy();
    },
    'the server closes gracefully and the call outlives the grace period': (server: Server) => {
      void server.close({ graceMs: 100 });
    },
  };
  for (const [how, end] of Object.entries(sawIt)) {
    void test(`a call a handler saw is never retried: ${how} -> UNAVAILABLE (not retrySafe), the handler ran exactly once`, { timeout: 10_000 }, async (t) => {
      const probe = new Probe();
      const url = unixUrl(t);
      const server = await listenAfter(t, url, [svcService('one', probe)]);
      const ch = openChannel(t, url);
      await within(ch.whenReady(), 3000, 'the channel to connect');
      const client = ch.client(Svc);
      const call = client.hang(null, { timeoutMs: 5000 });
      call.catch(() => undefined);
      const stream = client.ticks({ count: 0, hang: true }, { timeoutMs: 5000 });
      const streamDone = errorOf(async () => {
        for await (const n of stream) void n;
      });
      await until(() => probe.count('hang') === 1 && probe.count('ticks') === 1, 2000, 'both handlers started');
      end(server);
      const error = await within(errorOf(() => call), 3000, 'the unary call');
      assertStatus(error, Status.UNAVAILABLE, 'the unary call');
      assert.equal(error.retrySafe, false, `processed, so not retry-safe: ${error.message}`);
      const streamError = await within(streamDone, 3000, 'the stream (no message had arrived)');
      assertStatus(streamError, Status.UNAVAILABLE, 'the stream');
      assert.equal(streamError.retrySafe, false);
      // a retry would have gone to the same server (it still listens after a destroy) or waited: give it the time
      await sleep(300);
      assert.equal(probe.count('hang'), 1, 'the unary handler ran exactly once');
      assert.equal(probe.count('ticks'), 1, 'the stream handler ran exactly once');
    });
  }
});

// ---------------------------------------------------------------- graceful restart racing calls

void describe('reconnect: graceful server restart', () => {
  void test('server.close({graceMs}) with calls in flight: they complete; calls racing or after the GOAWAY fail UNAVAILABLE retrySafe (fail-fast) or succeed on the new server (waitForReady)', { timeout: 15_000 }, async (t) => {
    const url = unixUrl(t);
    const probe1 = new Probe();
    const server1 = await listen(url, { services: [svcService('one', probe1)], log: quiet });
    t.after(async () => {
      for (const s of server1.sessions) s.destroy();
      await within(server1.close({ graceMs: 0 }), CLEANUP_MS, 'server 1 close');
    });
    const ch = openChannel(t, url);
    await within(ch.whenReady(), 3000, 'the channel to connect');
    const client = ch.client(Svc);

    const inFlight = Array.from({ length: 5 }, () => client.sleep(300));
    await until(() => probe1.count('sleep') === 5, 2000, 'the in-flight handlers started');

    type Outcome = { kind: 'ok'; node: string; waitForReady: boolean } | { kind: 'error'; error: unknown; waitForReady: boolean };
    const racing: Array<Promise<Outcome>> = [];
    const fire = (waitForReady: boolean): Promise<Outcome> =>
      client.whoami('race', waitForReady ? { waitForReady: true, timeoutMs: 8000 } : {}).then(
        (answer) => ({ kind: 'ok', node: answer.node, waitForReady }),
        (error: unknown) => ({ kind: 'error', error, waitForReady }),
      );
    // calls keep coming, every millisecond or so, from before close() until well after the GOAWAY arrived
    let firing = true;
    const firer = (async () => {
      for (let i = 0; firing; i++) {
        racing.push(fire(i % 2 === 1));
        await sleep(1);
      }
    })();
    await sleep(20);
    const closing = server1.close({ graceMs: 5000 });
    await until(() => ch.state !== 'ready', 2000, 'the channel noticed the GOAWAY');
    const afterGoaway = Array.from({ length: 10 }, () => fire(false));
    const waitingAfter = Array.from({ length: 10 }, () => fire(true));
    await sleep(50);
    firing = false;
    await firer;

    for (const [i, answer] of (await within(Promise.all(inFlight), 3000, 'the in-flight calls')).entries()) {
      assert.equal(answer.node, 'one', `in-flight call ${i} completed on the old server`);
    }
    for (const outcome of await Promise.all(afterGoaway)) {
      assert.equal(outcome.kind, 'error', 'a fail-fast call after the GOAWAY fails');
      if (outcome.kind === 'error') {
        assertStatus(outcome.error, Status.UNAVAILABLE, 'a fail-fast call after the GOAWAY');
        assert.equal(outcome.error.retrySafe, true);
      }
    }
    await within(closing, 3000, 'server 1 to close');
    const probe2 = new Probe();
    await listenAfter(t, url, [svcService('two', probe2)]);

    for (const outcome of await within(Promise.all(waitingAfter), 5000, 'the waitForReady calls made after the GOAWAY')) {
      assert.deepEqual(outcome.kind === 'ok' ? outcome.node : outcome.error, 'two', 'a waitForReady call after the GOAWAY succeeds on the new server');
    }
    const tally = { oldServer: 0, newServer: 0, unavailable: 0 };
    for (const outcome of await within(Promise.all(racing), 5000, 'the racing calls')) {
      if (outcome.kind === 'ok') {
        assert.ok(outcome.node === 'one' || (outcome.node === 'two' && outcome.waitForReady), `answered by ${outcome.node}`);
        if (outcome.node === 'one') tally.oldServer++;
        else tally.newServer++;
      } else {
        assert.equal(outcome.waitForReady, false, `a waitForReady call failed: ${String(outcome.error)}`);
        assertStatus(outcome.error, Status.UNAVAILABLE, 'a racing fail-fast call');
        assert.equal(outcome.error.retrySafe, true, `a racing call that failed was never processed: ${outcome.error.message}`);
        tally.unavailable++;
      }
    }
    t.diagnostic(`racing calls: ${JSON.stringify(tally)}`);
    assert.ok(tally.oldServer > 0 && tally.newServer > 0 && tally.unavailable > 0, `every outcome happened: ${JSON.stringify(tally)}`);
    assert.equal(probe1.count('whoami'), tally.oldServer, 'the old server ran exactly the calls that say so');
    assert.equal(probe2.count('whoami'), tally.newServer + waitingAfter.length, 'the new server ran exactly the calls that say so');
  });
});

// ---------------------------------------------------------------- 200 clients after a restart

/** A Unix socket server that timestamps every accepted connection and runs a gridwire session on it. */
async function countingServer(t: TestContext, url: string, services: ServiceImpl[]): Promise<{ accepted: number[]; sessions: Set<RpcSession> }> {
  const accepted: number[] = [];
  const sessions = new Set<RpcSession>();
  const server: NetServer = createServer({ pauseOnConnect: true }, (socket) => {
    accepted.push(performance.now());
    socket.on('error', () => undefined);
    const session = createSession(new SocketTransport(socket, { transport: 'unix', address: url }), 'acceptor', { services });
    sessions.add(session);
    void session.closed.then(() => sessions.delete(session));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(new URL(url).pathname, resolve);
  });
  t.after(async () => {
    for (const s of sessions) s.destroy();
    await within(new Promise<void>((resolve) => server.close(() => resolve())), CLEANUP_MS, 'counting server close');
  });
  return { accepted, sessions };
}

/** The most timestamps in any window [x, x + width). */
function maxInWindow(times: number[], width: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i]! - sorted[j]! >= width) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

void describe('reconnect: a fleet after a server restart', () => {
  const CLIENTS = 200;
  void test(
    `${CLIENTS} channels with the DEFAULT reconnect options spread their reconnects: no 1 s window holds more than 20 % of the attempts`,
    {
      // lossSpreadMs 10 s (channel default) with retries after a loss capped at >= 5 s: a Monte Carlo of
      // src/channel/backoff.ts puts the busiest second at 15 % median, 19 % at the 99th percentile for a 0.5 s restart.
      timeout: 25_000,
    },
    async (t) => {
      const url = unixUrl(t);
      const server1 = await listen(url, { services: [svcService('one')], log: quiet });
      t.after(async () => {
        for (const s of server1.sessions) s.destroy();
        await within(server1.close({ graceMs: 0 }), CLEANUP_MS, 'server 1 close');
      });
      const channels = Array.from({ length: CLIENTS }, () => {
        const ch = channel(url, { log: quiet });
        t.after(() => within(ch.close({ graceMs: 0 }), CLEANUP_MS, 'channel close'));
        return ch;
      });
      await within(Promise.all(channels.map((ch) => ch.whenReady())), 5000, 'all channels connected');
      // a connection lost within 1 s of being made counts as a failed dial; these lasted
      await sleep(1100);
      const dials: number[] = [];
      for (const ch of channels) ch.on('state', (e) => e.state === 'connecting' && dials.push(performance.now()));

      const stoppedAt = performance.now();
      await within(server1.close({ graceMs: 0 }), 2000, 'server 1 to close');
      await until(() => channels.every((ch) => ch.state !== 'ready'), 2000, 'every channel lost its connection');
      await sleep(Math.max(0, 500 - (performance.now() - stoppedAt)));
      const restartedAt = performance.now();
      const server2 = await countingServer(t, url, [svcService('two')]);
      await until(() => channels.every((ch) => ch.state === 'ready'), 14_000, 'every channel reconnected');
      const lastAt = Math.max(...server2.accepted);

      const attempts = server2.accepted.length;
      const busiest = maxInWindow(server2.accepted, 1000);
      const perSecond = Array.from({ length: Math.ceil((lastAt - restartedAt) / 1000) }, (_, s) =>
        server2.accepted.filter((at) => at - restartedAt >= s * 1000 && at - restartedAt < (s + 1) * 1000).length,
      );
      t.diagnostic(
        `server-side attempts: ${attempts} over ${((lastAt - restartedAt) / 1000).toFixed(2)} s after the restart; ` +
          `busiest 1 s window ${busiest} (${((100 * busiest) / attempts).toFixed(1)} %); per second ${perSecond.join(' ')}; ` +
          `client dials (refused ones too): ${dials.length}, busiest 1 s window ${maxInWindow(dials, 1000)}`,
      );
      assert.ok(attempts >= CLIENTS, 'every channel came back');
      assert.ok(busiest <= 0.2 * attempts, `the busiest 1 s window holds ${busiest} of ${attempts} attempts (${((100 * busiest) / attempts).toFixed(1)} %)`);
    },
  );
});

// ---------------------------------------------------------------- a dial whose session is refused at once

void describe('reconnect: a connection refused right after its handshake', () => {
  void test(
    'a server whose HELLO and GOAWAY arrive together: the channel redials with backoff instead of staying "connecting" forever',
    {
      timeout: 10_000,
    },
    async (t) => {
      let connections = 0;
      const url = await rawUnixServer(t, (socket) => {
        connections++;
        const goaway = encodeFrame({ type: FrameType.GOAWAY, flags: 0, streamId: 0, payload: encodeGoaway(0, ConnectionCode.NO_ERROR, 'go away') });
        socket.end(Buffer.concat([helloFrame(), goaway]));
      });
      const ch = openChannel(t, url);
      const seen = deferred<void>();
      ch.on('state', (e) => e.state === 'backoff' && seen.resolve());
      await sleep(1000);
      t.diagnostic(`connections in 1 s: ${connections}; state ${ch.state}`);
      assert.ok(connections >= 2, `redialed (FAST backoff: at most 200 ms between dials), saw ${connections} connection(s), state ${ch.state}`);
      await within(seen.promise, 100, 'a backoff state');
    },
  );
});
