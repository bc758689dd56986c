/**
 * T-F3 (reliability.md §4 A), the slow half: a peer that starts a frame and never finishes it. Before frameTimeoutMs,
 * 500 connections holding half a frame were never closed. Now a frame that has started arriving must complete within
 * frameTimeoutMs (checked four times per limit, so within 1.25 x it), or the connection closes with
 * GW_ERR_FRAME_TIMEOUT (GOAWAY PROTOCOL_ERROR); and a bulk transfer, whose reads mostly end mid-frame, is not hurt by a
 * short limit. Each attack runs against a default listen() with a canary doing c=1 echo calls beside it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { serve, type RpcError } from '../../src/index.js';
import { ConnectionCode, FrameType } from '../../src/wire/constants.js';
import { FrameDecoder } from '../../src/wire/decoder.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { decodeGoaway } from '../../src/wire/payloads.js';
import { Bulk, MiB, patternChunks, patternSha256, Tally } from '../fixtures/bulk.js';
import { connectTo, startServer } from '../fixtures/connections.js';
import { assertCanaryHealthy, assertClosedWith, attacker, dosTarget, RssWatch, type Attacker } from '../fixtures/dos.js';
import { sleep, within } from '../helpers.js';

const FRAME_TIMEOUT_MS = 400;
/** The attacker makes the server hold one connection and one pending frame of at most 1 KiB; the rest is the canary's own churn. */
const RSS_BUDGET_MIB = 32;

/** The GOAWAY the server sent the attacker, decoded from what the attacker reads. */
function goawaySentTo(a: Attacker): () => { code: number; message: string } | undefined {
  let goaway: { code: number; message: string } | undefined;
  const decoder = new FrameDecoder(
    (type, _flags, _id, payload) => {
      if (type === FrameType.GOAWAY) goaway ??= decodeGoaway(payload);
    },
    { maxFrameBytes: 16 * MiB },
  );
  a.socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  return () => goaway;
}

/** A PING frame (8-byte payload) cut after `bytes` bytes: a header or a payload that never completes. */
function pingCutAfter(bytes: number): Uint8Array {
  return encodeFrame({ type: FrameType.PING, flags: 0, streamId: 0, payload: new Uint8Array(8) }).subarray(0, bytes);
}

void describe('frame-completion timeout', () => {
  for (const { what, bytes } of [
    { what: 'a frame header half sent', bytes: 5 },
    { what: 'a payload half sent', bytes: 10 + 4 },
  ]) {
    void test(`T-F3 frame timeout: ${what} and held closes the connection with GW_ERR_FRAME_TIMEOUT within 1.25 x frameTimeoutMs`, { timeout: 20_000 }, async (t) => {
      const target = await dosTarget(t, { frameTimeoutMs: FRAME_TIMEOUT_MS });
      const rss = new RssWatch();
      const canary = target.startCanary();
      const a = await attacker(t, target.url, {}, true);
      const goaway = goawaySentTo(a);
      a.write(pingCutAfter(bytes));
      const started = performance.now();
      await within(a.gone, 3 * FRAME_TIMEOUT_MS + 1_000, 'the server to close the attacker');
      const tookMs = performance.now() - started;
      const line = await assertClosedWith(target, 'GW_ERR_FRAME_TIMEOUT');
      assertCanaryHealthy(target, await canary.stop(), `T-F3 ${what}`);
      rss.assertUnder(RSS_BUDGET_MIB, `T-F3 ${what}`);
      assert.match(line, /frameTimeoutMs \(400 ms\)/);
      assert.ok(tookMs >= FRAME_TIMEOUT_MS - 20, `closed after ${tookMs.toFixed(0)} ms: before the limit`);
      // 1.25 x the limit, plus room for a loaded machine
      assert.ok(tookMs <= 1.25 * FRAME_TIMEOUT_MS + 400, `closed after ${tookMs.toFixed(0)} ms: far past 1.25 x the limit`);
      assert.equal(goaway()?.code, ConnectionCode.PROTOCOL_ERROR, 'the attacker is told why');
      assert.match(goaway()!.message, /GW_ERR_FRAME_TIMEOUT/);
    });
  }

  void test('T-F3 frame timeout: a peer trickling one frame a byte at a time, each byte within the limit, is still closed', { timeout: 20_000 }, async (t) => {
    // progress is a frame completed, not a byte read: a trickle slower than a frame per limit cannot hold the connection
    const target = await dosTarget(t, { frameTimeoutMs: FRAME_TIMEOUT_MS });
    const a = await attacker(t, target.url, {}, true);
    const frame = encodeFrame({ type: FrameType.PING, flags: 0, streamId: 0, payload: new Uint8Array(8) });
    const started = performance.now();
    let sent = 0;
    const trickle = setInterval(() => {
      if (sent < frame.length) a.write(frame.subarray(sent, ++sent));
    }, FRAME_TIMEOUT_MS / 4);
    t.after(() => clearInterval(trickle));
    await within(a.gone, 3 * FRAME_TIMEOUT_MS + 1_000, 'the server to close the trickling attacker');
    assert.ok(sent < frame.length, `the frame completed (${sent} bytes) before the server closed the connection`);
    await assertClosedWith(target, 'GW_ERR_FRAME_TIMEOUT');
    assert.ok(performance.now() - started <= 1.25 * FRAME_TIMEOUT_MS + 400);
  });

  void test('T-F3 frame timeout: a frame whose rest arrived while our own event loop was blocked is not blamed on the peer', { timeout: 20_000 }, async (t) => {
    const { server, logs } = await startServer(t, { frameTimeoutMs: FRAME_TIMEOUT_MS });
    const a = await attacker(t, server.url, {}, true);
    const frame = encodeFrame({ type: FrameType.PING, flags: 0, streamId: 0, payload: new Uint8Array(8) });
    a.write(frame.subarray(0, 5));
    await sleep(0.85 * FRAME_TIMEOUT_MS); // three of the four checks have found the frame stalled
    a.write(frame.subarray(5)); // the rest reaches the kernel now, but this process reads it only after the block
    const blockUntil = performance.now() + 0.5 * FRAME_TIMEOUT_MS;
    while (performance.now() < blockUntil); // the 4th check comes due during the block and runs before the read
    await sleep(2 * FRAME_TIMEOUT_MS);
    assert.deepEqual(logs.filter((l) => l.level === 'warn'), [], 'the connection was not closed');
    assert.equal(server.sessions.size, 1);
  });

  void test('T-F3 frame timeout: 64 MiB each way over TCP with frameTimeoutMs 50 on both sides completes, the bytes intact', { timeout: 60_000 }, async (t) => {
    const size = 64 * MiB;
    const service = serve(Bulk, {
      async put(req, body) {
        const tally = new Tally();
        for await (const chunk of body) tally.add(chunk);
        return { name: req.name, bytes: tally.bytes, chunks: tally.chunks, sha256: tally.sha256 };
      },
      get: (req) => patternChunks(req.bytes),
      echo: (s) => s,
    });
    const { server, logs } = await startServer(t, { services: [service], frameTimeoutMs: 50 });
    const session = await connectTo(t, server.url, { frameTimeoutMs: 50 });
    const files = session.client(Bulk);
    const download = new Tally();
    const [uploaded] = await within(
      Promise.all([
        files.put({ name: 'up' }, patternChunks(size)),
        (async () => {
          for await (const chunk of files.get({ bytes: size })) download.add(chunk);
        })(),
      ]),
      50_000,
      'the transfers',
    ).catch((error: RpcError) => assert.fail(`a transfer failed: ${error.message}`));
    const sha = patternSha256(size);
    assert.equal(uploaded.sha256, sha, 'upload intact');
    assert.equal(download.bytes, size);
    assert.equal(download.sha256, sha, 'download intact');
    assert.deepEqual(logs.filter((l) => l.level === 'warn'), [], 'no connection was closed');
    assert.equal(session.error, undefined);
  });
});
