/**
 * Memory a hostile peer can make a default listen() hold, and what it can make it write (reliability.md §4 B): partly
 * received messages of 1-byte fragments (T-D9), replies provoked while the peer reads nothing (T-D1), responses held
 * for a peer that grants no credit and the process-wide budget two such peers share (T-D9), credit granted a byte at a
 * time (T-D4), and a peer that opens credit wide but keeps its TCP window closed (T-D5 / T-X7). Each attack runs beside
 * a canary connection (test/fixtures/dos.ts) and states its RSS budget.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { msgpackCodec } from '../../src/rpc/codec.js';
import { Flag, FrameType, MAX_WINDOW, Status } from '../../src/wire/constants.js';
import { FrameDecoder } from '../../src/wire/decoder.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { decodeReset, encodeCredit, encodeOpen } from '../../src/wire/payloads.js';
import type { HelloSettings } from '../../src/wire/hello.js';
import { sleep, until } from '../helpers.js';
import { bytesPath, bytesService } from '../fixtures/bytes-service.js';
import { assertCanaryHealthy, assertClosedWith, attacker, dosTarget, RssWatch, type Attacker } from '../fixtures/dos.js';
import { echoService } from '../fixtures/echo-service.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** The checklist's minimum DATA size (MIN_DATA_BYTES), written out so the test also runs against older code. */
const MIN_DATA_BYTES = 1024;
const ECHO = new TextEncoder().encode('test.Echo/echo');
/** A raw echo: its response is the request's bytes, so what is held is exactly what the budgets count. */
const RAW_ECHO = bytesPath('echo');
const RAW_SERVICES = { services: [echoService(), bytesService()], readBudgetBytes: 64 * KiB };
const NO_SUCH_METHOD = new TextEncoder().encode('test.Nope/nothing');

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Bytes of ArrayBuffers still reachable (after a full GC), in MiB: what is held, not garbage waiting to be collected. */
function heldMiB(): number {
  gc();
  gc();
  return process.memoryUsage().arrayBuffers / MiB;
}

function frame(type: number, flags: number, streamId: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  return encodeFrame({ type, flags, streamId, payload });
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return Buffer.concat(parts);
}

/** What an attacker that reads gets back: every frame, decoded, with RESETs' status and message. */
interface Received {
  resets: Array<{ streamId: number; status: number; message: string }>;
  data: Array<{ streamId: number; flags: number; length: number }>;
  goaway: boolean;
}

/** An attacker that reads what the server sends and decodes it. */
async function readingAttacker(t: TestContext, url: string, hello: Partial<HelloSettings>): Promise<{ attacker: Attacker; received: Received }> {
  const a = await attacker(t, url, hello, true);
  const received: Received = { resets: [], data: [], goaway: false };
  const decoder = new FrameDecoder(
    (type, flags, streamId, payload) => {
      if (type === FrameType.RESET) received.resets.push({ streamId, ...decodeReset(payload) });
      else if (type === FrameType.DATA) received.data.push({ streamId, flags, length: payload.length });
      else if (type === FrameType.GOAWAY) received.goaway = true;
    },
    { maxFrameBytes: 16 * MiB, expectHelloFirst: true },
  );
  a.socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  return { attacker: a, received };
}

/** OPEN for `method` on `id` plus `message` in DATA frames of at most 64 KiB, the last one ending the stream. */
function echoCall(id: number, message: Uint8Array, method: Uint8Array = ECHO): Uint8Array {
  const parts = [frame(FrameType.OPEN, 0, id, encodeOpen(0, 0, method))];
  for (let at = 0; at < message.length; at += 64 * KiB) {
    const end = Math.min(message.length, at + 64 * KiB);
    const flags = end === message.length ? Flag.MESSAGE_END | Flag.END_STREAM : 0;
    parts.push(frame(FrameType.DATA, flags, id, message.subarray(at, end)));
  }
  return concat(parts);
}

/** Writes `bytes`, waiting for drain when the socket asks (the server keeps reading even when we do not). */
async function send(a: Attacker, bytes: Uint8Array): Promise<void> {
  if (a.write(bytes)) return;
  await Promise.race([new Promise((resolve) => a.socket.once('drain', resolve)), a.gone]);
}

void describe('DoS: memory held and written for a hostile peer', () => {
  void test('T-D9 1-byte fragments of never-finished messages on every stream: the connection budget trips RESOURCE_EXHAUSTED on the growing stream, RSS growth < 48 MiB', { timeout: 60_000 }, async (t) => {
    // a per-read budget keeps one flooder from holding the event loop (the floods work makes it the default);
    // a 2 MiB reassembly budget trips after 2 M fragments instead of the default's 32 M
    const target = await dosTarget(t, { maxReassemblyBytes: 2 * MiB, readBudgetBytes: 64 * KiB });
    const { attacker: a, received } = await readingAttacker(t, target.url, {});
    const STREAMS = 100;
    const opens: Uint8Array[] = [];
    for (let s = 0; s < STREAMS; s++) opens.push(frame(FrameType.OPEN, 0, 2 * s + 1, encodeOpen(0, 0, ECHO)));
    a.write(concat(opens));
    const rss = new RssWatch();
    const canary = target.startCanary();
    // one write: 100 streams x 300 fragments of 1 byte, none of them ending its message
    const fragments: Uint8Array[] = [];
    const one = new Uint8Array([0x61]);
    for (let s = 0; s < STREAMS; s++) {
      const f = frame(FrameType.DATA, 0, 2 * s + 1, one);
      for (let i = 0; i < 300; i++) fragments.push(f);
    }
    const round = concat(fragments);
    let sent = 0;
    // 2.4 M fragments: past the budget (2 MiB of payload), and ~660 MiB of fragment objects before the fix
    while (sent < 80 && received.resets.length < STREAMS) {
      await send(a, round);
      sent++;
    }
    await sleep(200);
    const result = await canary.stop();
    rss.assertUnder(48, 'T-D9 1-byte fragments');
    const exhausted = received.resets.filter((r) => r.status === Status.RESOURCE_EXHAUSTED);
    assert.ok(exhausted.length > 0, `no stream failed RESOURCE_EXHAUSTED after ${sent * 30_000} fragments (resets: ${received.resets.length})`);
    assert.match(exhausted[0]!.message, /maxReassemblyBytes of 2097152/);
    assertCanaryHealthy(target, result, 'T-D9 1-byte fragments');
  });

  void test('T-D1 OPENs for an unknown method while never reading: closed with GW_ERR_ENHANCE_YOUR_CALM once 1 000 provoked RESETs wait unread, RSS growth < 64 MiB', { timeout: 60_000 }, async (t) => {
    const target = await dosTarget(t);
    const a = await attacker(t, target.url);
    const rss = new RssWatch();
    const canary = target.startCanary();
    let id = 1;
    const endsAt = performance.now() + 20_000;
    let closed = false;
    void a.gone.then(() => (closed = true));
    while (!closed && performance.now() < endsAt) {
      const batch: Uint8Array[] = [];
      for (let i = 0; i < 2000; i++, id += 2) batch.push(frame(FrameType.OPEN, 0, id, encodeOpen(0, 0, NO_SUCH_METHOD)));
      await send(a, concat(batch));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const line = await assertClosedWith(target, 'GW_ERR_ENHANCE_YOUR_CALM');
    const result = await canary.stop();
    rss.assertUnder(64, 'T-D1 unknown-method OPEN flood');
    assert.match(line, /queue \d+ frames/);
    assertCanaryHealthy(target, result, 'T-D1 unknown-method OPEN flood');
  });

  void test('T-D9 zero-window HELLO and 1 MiB echo requests from two peers: responses waiting for credit stay within maxQueuedSendBytes and the process-wide memoryBudget they share (RESOURCE_EXHAUSTED beyond): < 16 MiB held, RSS peak growth < 128 MiB', { timeout: 60_000 }, async (t) => {
    // the defaults' shape at a quarter of their scale (32 MiB per connection, 1 GiB per process, 4 MiB messages):
    // the first attacker fills its 8 MiB connection budget, the second finds 12 - 8 MiB left in the process's
    const target = await dosTarget(t, { maxQueuedSendBytes: 8 * MiB, memoryBudget: 12 * MiB, ...RAW_SERVICES });
    const zero = { connectionWindow: 0, initialStreamWindow: 0 };
    const first = await readingAttacker(t, target.url, zero);
    const second = await readingAttacker(t, target.url, zero);
    const request = new Uint8Array(MiB).fill(7);
    const CALLS = 12; // 2 x 12 MiB of responses (and their requests) held forever before the fix, then 2 x 60 more
    const calls = Array.from({ length: CALLS }, (_, i) => echoCall(2 * i + 1, request, RAW_ECHO));
    const heldBefore = heldMiB();
    const rss = new RssWatch();
    const canary = target.startCanary();
    for (const call of calls) await send(first.attacker, call);
    await until(() => first.received.resets.length >= CALLS - 7, 10_000, 'the first attacker to fill its connection budget');
    for (const call of calls) await send(second.attacker, call);
    const failed = (r: Received): number => r.resets.filter((x) => x.status === Status.RESOURCE_EXHAUSTED).length;
    // 12 MiB hold 11 responses of 1 MiB (and 64 bytes) at most: every other one fails
    await until(() => failed(first.received) + failed(second.received) >= 2 * CALLS - 11, 10_000, 'the responses over budget to fail');
    // then both keep asking, 40 calls a second each, for 1.5 s: every one fails, and the canary keeps its latency
    const MORE = 60;
    for (let i = 0; i < MORE; i++) {
      const id = 2 * (CALLS + i) + 1;
      await send(first.attacker, echoCall(id, request, RAW_ECHO));
      await send(second.attacker, echoCall(id, request, RAW_ECHO));
      await sleep(25);
    }
    await until(() => failed(first.received) + failed(second.received) >= 2 * (CALLS + MORE) - 11, 10_000, 'the later responses to fail');
    const result = await canary.stop();
    // held: the 12 MiB budget; before the fix 2 x 12 MiB of responses and as much of requests
    const held = heldMiB() - heldBefore;
    assert.ok(held < 16, `T-D9 zero-window echo requests: ${held.toFixed(1)} MiB of buffers held, budget 16 MiB`);
    rss.assertUnder(128, 'T-D9 zero-window echo requests');
    const messages = [...first.received.resets, ...second.received.resets].map((r) => r.message);
    assert.ok(messages.some((m) => m.includes('maxQueuedSendBytes of 8388608')), `no stream failed on the connection budget: ${messages.slice(0, 3).join(' | ')}`);
    assert.ok(messages.some((m) => m.includes('memoryBudget of 12582912')), `no stream failed on the process budget: ${messages.slice(0, 3).join(' | ')}`);
    assertCanaryHealthy(target, result, 'T-D9 zero-window echo requests');
  });

  void test('T-D4 data dribble: a peer granting credit 1 byte at a time on 50 streams gets no DATA frame under 1 KiB but the last of a message', { timeout: 60_000 }, async (t) => {
    const target = await dosTarget(t);
    const { attacker: a, received } = await readingAttacker(t, target.url, { connectionWindow: 0, initialStreamWindow: 0 });
    const STREAMS = 50;
    const request = msgpackCodec.encode({ data: new Uint8Array(3000).fill(1) });
    const calls: Uint8Array[] = [];
    for (let s = 0; s < STREAMS; s++) calls.push(echoCall(2 * s + 1, request));
    a.write(concat(calls));
    await sleep(100); // the handlers answer; every response waits for credit
    const rss = new RssWatch();
    const canary = target.startCanary();
    const oneByte = encodeCredit(1);
    // 1 200 rounds: one byte of connection credit and one byte on every stream each round
    for (let round = 0; round < 1200; round++) {
      const grants: Uint8Array[] = [frame(FrameType.CREDIT, 0, 0, oneByte)];
      for (let s = 0; s < STREAMS; s++) grants.push(frame(FrameType.CREDIT, 0, 2 * s + 1, oneByte));
      await send(a, concat(grants));
      if (round % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await sleep(300);
    const result = await canary.stop();
    rss.assertUnder(32, 'T-D4 data dribble');
    const small = received.data.filter((d) => d.length < MIN_DATA_BYTES && (d.flags & Flag.MESSAGE_END) === 0);
    assert.deepEqual(small.slice(0, 5), [], `${small.length} DATA frames under ${MIN_DATA_BYTES} bytes that do not end their message`);
    assert.ok(received.data.length > 0 || received.goaway, 'the granted credit let no DATA out at all');
    assertCanaryHealthy(target, result, 'T-D4 data dribble');
    // CREDIT frames far beyond what our DATA explains (100, plus 4 per DATA frame and per stream): the dribbler is cut
    assert.match(await assertClosedWith(target, 'GW_ERR_ENHANCE_YOUR_CALM', 5_000), /CREDIT flood/);
  });

  void test('T-D5 slow reader: credit opened wide, socket never read, 4 MiB echo requests: memory bounded by the send budget, then closed with GW_ERR_WRITE_STALL', { timeout: 60_000 }, async (t) => {
    let echoed = 0;
    const services = [echoService(), bytesService(undefined, undefined, () => echoed++)];
    const target = await dosTarget(t, { writeStallTimeoutMs: 1_000, ...RAW_SERVICES, services });
    const a = await attacker(t, target.url, { connectionWindow: MAX_WINDOW, initialStreamWindow: MAX_WINDOW });
    const request = new Uint8Array(4 * MiB).fill(9);
    const CALLS = 12; // 48 MiB of responses for a peer that reads none of them: more than maxQueuedSendBytes
    const calls = Array.from({ length: CALLS }, (_, i) => echoCall(2 * i + 1, request, RAW_ECHO));
    const rss = new RssWatch();
    for (const call of calls) if (!a.socket.destroyed) await send(a, call);
    // the canary measures the slow reader: from when the server has read the requests and holds their responses for
    // a peer that reads nothing, until it gives up on it. Reading a 4 MiB request holds the event loop 5-14 ms
    // whoever sends it (dos-msgpack.test.ts), so with the canary running meanwhile, 12 of them among the few hundred
    // calls a loaded machine fits in were its p99 (5.4-17 ms), and the test measured how fast this machine copies 4 MiB
    await until(() => echoed === CALLS || target.logs.some((l) => l.message.includes('GW_ERR_WRITE_STALL')), 10_000, 'the server to read the requests');
    const canary = target.startCanary();
    const line = await assertClosedWith(target, 'GW_ERR_WRITE_STALL', 10_000);
    // the attacker never reads, so it never sees our FIN: the server's side must be gone, its memory with it
    await until(() => target.server.sessions.size === 1, 5_000, 'the server to drop the attacker');
    const result = await canary.stop();
    rss.assertUnder(112, 'T-D5 slow reader');
    assert.match(line, /no write progress/);
    assertCanaryHealthy(target, result, 'T-D5 slow reader');
  });
});
