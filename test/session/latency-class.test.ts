/**
 * Small calls first, by design (issue 12): the outbox writes small messages and control frames before bulk data at
 * every flush, and hands the transport a bounded amount of bulk data per event-loop turn, so a small frame never waits
 * behind more than that much of our own bulk in the transport's buffer.
 * - A small message that had to wait (the transport asked us to wait) leaves before the bulk data queued ahead of it
 *   (the latency class in scheduler.ts), observed by frame order on a memory transport.
 * - While bulk data waits, no transport write, and no event-loop turn's writes together, carry more than
 *   TURN_WRITE_BUDGET_BYTES (plus the one frame that crosses it), on a memory pair and over TCP, where a socket that
 *   takes everything at once drains on the same tick (before, 1 MiB per flush, several flushes a turn).
 */
import assert from 'node:assert/strict';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';

import { TURN_WRITE_BUDGET_BYTES } from '../../src/session/outbox.js';
import { Session } from '../../src/session/session.js';
import type { Stream } from '../../src/session/stream.js';
import { SocketTransport } from '../../src/transport/socket.js';
import type { Transport } from '../../src/transport/transport.js';
import { FrameType, MAX_WINDOW } from '../../src/wire/constants.js';
import { againstRawPeer, tapFrames } from '../fixtures/sessions.js';
import { deferred, helloFrame, RawPeer, sleep, until, within } from '../helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** What one turn may hand the transport while bulk waits: the budget, the frame that crosses it, a few small frames. */
const TURN_BOUND = TURN_WRITE_BUDGET_BYTES + 64 * KiB + 2 * KiB;
/** The peer grants everything: only the outbox's own bounds hold the data back. */
const WIDE_OPEN = { connectionWindow: MAX_WINDOW, initialStreamWindow: MAX_WINDOW };
const METHOD = new TextEncoder().encode('test.Latency/bulk');

/** Queues `bytes` of bulk chunks on a new stream (ignoring the sender's high-water mark: all of it waits in the queue). */
function queueBulk(core: Session, bytes: number): Stream {
  const stream = core.openStream(METHOD);
  const chunk = new Uint8Array(64 * KiB).fill(0xb5);
  for (let sent = 0; sent < bytes; sent += chunk.length) stream.sendChunk(chunk);
  return stream;
}

/** Bytes of every transport write from now on, each with the event-loop turn it happened in (a setImmediate ticker). */
function recordWrites(t: TestContext, transport: Transport): { sizes: number[]; perTurn: Map<number, number> } {
  const sizes: number[] = [];
  const perTurn = new Map<number, number>();
  let turn = 0;
  let ticking = true;
  const tick = (): void => {
    turn++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  t.after(() => (ticking = false));
  const original = transport.write.bind(transport);
  transport.write = (chunks) => {
    const size = chunks.reduce((n, c) => n + c.length, 0);
    sizes.push(size);
    perTurn.set(turn, (perTurn.get(turn) ?? 0) + size);
    return original(chunks);
  };
  return { sizes, perTurn };
}

void describe('the latency class: small messages before bulk data', () => {
  void test('a small message queued while the transport asks us to wait leaves before the bulk data queued ahead of it', { timeout: 5000 }, async (t) => {
    const { session, sessionEnd } = againstRawPeer(t, 'dialer', {}, WIDE_OPEN);
    await within(session.ready, 1000, 'handshake');
    const frames = tapFrames(sessionEnd);
    const core = session.core;
    const bulk = queueBulk(core, 4 * MiB);
    // the first flush (on nextTick) hands the transport its bulk data and the transport asks us to wait (past 64 KiB)
    await new Promise((resolve) => process.nextTick(resolve));
    assert.ok(frames.some((f) => f.type === FrameType.DATA && f.streamId === bulk.id), 'the bulk stream started writing');
    const small = core.openStream(METHOD);
    small.sendMessage(new Uint8Array(32).fill(1)); // waits in the scheduler: the transport is blocked
    const mark = frames.length;
    await until(() => frames.some((f) => f.type === FrameType.DATA && f.streamId === small.id), 2000, 'the small message');
    const dataAfter = frames.slice(mark).filter((f) => f.type === FrameType.DATA);
    assert.equal(
      dataAfter[0]?.streamId,
      small.id,
      `after the small message was queued, DATA left in this order: ${dataAfter.slice(0, 4).map((f) => `stream ${f.streamId} (${f.payload.length} B)`).join(', ')}`,
    );
  });

  void test('a small message never waits for the bulk class: with several bulk streams ready, it is the first DATA after the transport drains', { timeout: 5000 }, async (t) => {
    const { session, sessionEnd } = againstRawPeer(t, 'dialer', {}, WIDE_OPEN);
    await within(session.ready, 1000, 'handshake');
    const frames = tapFrames(sessionEnd);
    const core = session.core;
    const bulks = [queueBulk(core, 2 * MiB), queueBulk(core, 2 * MiB), queueBulk(core, 2 * MiB)];
    await new Promise((resolve) => process.nextTick(resolve));
    const smalls = [core.openStream(METHOD), core.openStream(METHOD)];
    for (const s of smalls) s.sendMessage(new Uint8Array(100).fill(2));
    const mark = frames.length;
    await until(() => smalls.every((s) => frames.some((f) => f.type === FrameType.DATA && f.streamId === s.id)), 2000, 'the small messages');
    const order = frames.slice(mark).filter((f) => f.type === FrameType.DATA).map((f) => f.streamId);
    assert.deepEqual(order.slice(0, 2), smalls.map((s) => s.id), `DATA order after they were queued: ${order.slice(0, 6).join(', ')} (bulk: ${bulks.map((b) => b.id).join(', ')})`);
  });
});

void describe('bounded bulk per event-loop turn', () => {
  void test(`memory pair: no transport write carries more than the turn budget (${TURN_WRITE_BUDGET_BYTES / KiB} KiB + one frame) while bulk waits`, { timeout: 10_000 }, async (t) => {
    const { session, sessionEnd } = againstRawPeer(t, 'dialer', {}, WIDE_OPEN);
    await within(session.ready, 1000, 'handshake');
    const { sizes, perTurn } = recordWrites(t, sessionEnd);
    const bulk = queueBulk(session.core, 8 * MiB);
    await until(() => sizes.reduce((n, s) => n + s, 0) >= 8 * MiB, 8000, 'the 8 MiB to be written');
    assert.ok(!bulk.sendBlocked, 'everything was written');
    const largest = Math.max(...sizes);
    assert.ok(largest <= TURN_BOUND, `a write of ${largest} bytes (bound ${TURN_BOUND}); ${sizes.length} writes`);
    const largestTurn = Math.max(...perTurn.values());
    assert.ok(largestTurn <= TURN_BOUND, `one turn wrote ${largestTurn} bytes (bound ${TURN_BOUND})`);
  });

  void test(`TCP: one event-loop turn hands the socket at most the turn budget (${TURN_WRITE_BUDGET_BYTES / KiB} KiB + one frame) while bulk waits, even when the socket drains at once`, { timeout: 15_000 }, async (t) => {
    const accepted = deferred<Socket>();
    const server = createServer((socket) => accepted.resolve(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => server.close());
    const ours = netConnect((server.address() as { port: number }).port, '127.0.0.1');
    const theirs = await within(accepted.promise, 2000, 'the connection');
    t.after(() => {
      ours.destroy();
      theirs.destroy();
    });
    const transport = new SocketTransport(ours, { transport: 'tcp', address: 'tcp://peer' });
    const core = new Session(transport, 'dialer', { onStream: () => undefined });
    t.after(() => core.destroy());
    const peer = new RawPeer(new SocketTransport(theirs, { transport: 'tcp', address: 'tcp://us' }));
    peer.sendBytes(helloFrame(WIDE_OPEN));
    await within(core.ready, 2000, 'handshake');
    const { sizes, perTurn } = recordWrites(t, transport);
    queueBulk(core, 16 * MiB);
    await until(() => sizes.reduce((n, s) => n + s, 0) >= 16 * MiB, 12_000, 'the 16 MiB to be written');
    await sleep(10);
    const largestTurn = Math.max(...perTurn.values());
    t.diagnostic(`${sizes.length} writes in ${perTurn.size} turns; the most in one turn: ${largestTurn} bytes`);
    assert.ok(largestTurn <= TURN_BOUND, `one turn handed the socket ${largestTurn} bytes (bound ${TURN_BOUND})`);
  });
});
