/**
 * A channel's transparent retry: a call no handler saw (refused by the peer, RESET REFUSED) is sent again once, a
 * call a handler saw never is, and an upload (whose body cannot be replayed) never is. Also the refusal a cancelled
 * stream causes while the callee still counts it: retried on the same connection. A mesh peer's pool retrying on its
 * other connection is in mesh/connections.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { setTimeout as sleepFor } from 'node:timers/promises';

import { Status, type Server } from '../../src/index.js';
import { Flag, FrameType } from '../../src/wire/constants.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { encodeReset } from '../../src/wire/payloads.js';
import { openChannel, rawUnixServer, startServer, unixUrl } from '../fixtures/connections.js';
import { frameSplitter, refusingChannel } from '../fixtures/frame-proxy.js';
import { Probe, Svc, svcService } from '../fixtures/mesh-service.js';
import { assertStatus, errorOf, helloFrame, rejectsWithStatus, sleep, until, within } from '../helpers.js';

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

// ---------------------------------------------------------------- tests

void describe('reconnect: transparent retry', () => {
  void test('T-S5 a peer that refuses every stream: unary, server stream and download are sent exactly twice (one retry) and fail UNAVAILABLE retrySafe; upload is sent once', { timeout: 10_000 }, async (t) => {
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
    void test(`T-S5 a call a handler saw is never retried: ${how} -> UNAVAILABLE (not retrySafe), the handler ran exactly once`, { timeout: 10_000 }, async (t) => {
      const probe = new Probe();
      const url = unixUrl(t);
      const { server } = await startServer(t, { services: [svcService('one', probe)] }, url);
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

void describe('transparent retry: a stream the callee still counts after a cancellation', () => {
  void test(
    'a channel call refused only because the callee still counts a cancelled stream (RESET REFUSED) is retried ' +
      'transparently, once, on the same connection: the refused attempt never reached a handler, the retry succeeds',
    { timeout: 10_000 },
    async (t) => {
      const { proxy, client, counts, release, gatedReturned } = await refusingChannel(t);
      // the callee holds the slot until the gated handler returns; the refusal is held in the proxy until it has
      proxy.beforeRefusal = async () => {
        release();
        await within(gatedReturned, 2000, 'the gated handler returned');
        await sleepFor(20);
      };
      const opensBefore = proxy.opens;
      assert.equal(await within(client.echo('retried'), 5000, 'the echo call'), 'retried');
      assert.equal(proxy.opens - opensBefore, 2, 'two attempts: the refused one and the retry');
      assert.equal(proxy.refusals, 1, 'one refusal');
      assert.equal(counts.echo, 1, 'the echo handler ran once (the refused attempt never reached it)');
      assert.equal(counts.gated, 2, 'the two cancelled gated calls');
    },
  );

  void test(
    'a channel call made right after a cancellation, while the callee still runs the cancelled handler, is retried ' +
      'exactly once: both attempts refused, UNAVAILABLE retrySafe, no handler saw it',
    { timeout: 10_000 },
    async (t) => {
      const { proxy, client, counts } = await refusingChannel(t);
      const opensBefore = proxy.opens;
      const error = await within(rejectsWithStatus(client.echo('refused'), Status.UNAVAILABLE), 5000, 'the echo call');
      assert.equal(error.retrySafe, true, `refused, so retry-safe: ${error.message}`);
      assert.equal(proxy.opens - opensBefore, 2, 'exactly two attempts: the call and one transparent retry');
      assert.equal(proxy.refusals, 2, 'both refused');
      assert.equal(counts.echo, 0, 'no handler saw the call');
      // a call with waitForReady is no different: being connected, it is refused twice too
      await within(rejectsWithStatus(client.echo('again', { waitForReady: true, timeoutMs: 2000 }), Status.UNAVAILABLE), 5000, 'the second call');
      assert.equal(proxy.opens - opensBefore, 4);
      assert.equal(counts.echo, 0);
    },
  );
});
