/**
 * Floods of frames that make us work for nothing (reliability.md §4 B, T-D1 T-D2 T-D3 T-D6): empty DATA, extension
 * frames, CREDIT that answers nothing we sent, Rapid Reset (open and cancel), MadeYouReset (a call, then a frame that
 * makes us reset it) and OPENs we must refuse. Each is cut by a counter of the peer guard (src/session/peer-guard.ts)
 * with GOAWAY ENHANCE_YOUR_CALM and a message that names the flood and its limit.
 *
 * Two kinds of test. Against a raw peer over a memory pair (fixtures/sessions.ts), the exact thresholds: what is
 * allowed passes, one more closes. Against a default listen() over TCP (fixtures/dos.ts), the attack at line rate from
 * a socket that never reads, with a canary client beside it: the attacker is closed with GW_ERR_ENHANCE_YOUR_CALM, the
 * canary's p99 stays within max(3 x idle, 5 ms), RSS grows less than RSS_BUDGET_MIB, and for the stream attacks,
 * handlers never run more than 2 x maxConcurrentStreams at once (the streams open, and as many cancelled ones whose
 * handlers still run) and each one saw its AbortSignal. And honest callers that cancel calls, over a real client, are
 * never taken for a flood.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';

import { bidi, clientStream, connect, defineService, download, listen, serve, serverStream, Status, unary, upload } from '../../src/index.js';
import { resolveSessionOptions } from '../../src/session/options.js';
import { msgpackCodec } from '../../src/rpc/codec.js';
import { utf8 } from '../../src/wire/bytes.js';
import { ConnectionCode, Flag, FrameType } from '../../src/wire/constants.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { decodeGoaway, encodeCredit, encodeEnd, encodeOpen, encodeReset } from '../../src/wire/payloads.js';
import { memoryRpcPair } from '../fixtures/connections.js';
import { Echo, echoService } from '../fixtures/echo-service.js';
import { assertCanaryHealthy, assertClosedWith, attacker, dosTarget, repeatFrame, RssWatch, type Attacker } from '../fixtures/dos.js';
import { pingBarrier, tapFrames, victim } from '../fixtures/sessions.js';
import { sleep, until, type RawFrame, type RawPeer } from '../helpers.js';

/** RSS growth allowed to each TCP attack (server, canary and attacker all live in this process). */
const RSS_BUDGET_MIB = 64;
/** How long a TCP attack runs at most: each is cut well within it (and a failed connection lingers 2 s). */
const ATTACK_MS = 1_500;
const CALM = 'GW_ERR_ENHANCE_YOUR_CALM';
const END_OF_REQUEST = Flag.MESSAGE_END | Flag.END_STREAM;
const EXTENSION_TYPE = 0x80;

// ---------------------------------------------------------------- a service whose handlers are counted

/** What the handlers of the Floods service did: how many ran at once at most, and whether each saw its abort. */
class HandlerTally {
  running = 0;
  maxRunning = 0;
  started = 0;
  aborted = 0;

  start(): void {
    this.started++;
    this.maxRunning = Math.max(this.maxRunning, ++this.running);
  }

  end(signal: AbortSignal): void {
    if (signal.aborted) this.aborted++;
    this.running--;
  }
}

const Floods = defineService('test.Floods', {
  /** Waits for its AbortSignal, then takes `lingerMs` more to return (a slow handler). */
  hang: unary<null, never>(),
  /** Reads requests until the stream ends or is reset. */
  chat: bidi<unknown, unknown>(),
  /** Counts the (raw, possibly empty) messages it reads. */
  count: clientStream({ codec: 'raw' }),
});

const HANG = utf8('test.Floods/hang');
const CHAT = utf8('test.Floods/chat');
const COUNT = utf8('test.Floods/count');
const ECHO = utf8('test.Echo/echo');
const NULL_REQUEST = msgpackCodec.encode(null);

function floodsService(tally: HandlerTally, lingerMs = 0): ReturnType<typeof serve> {
  return serve(Floods, {
    hang: (_request, ctx) => {
      tally.start();
      return new Promise<never>((_, reject) => {
        const stop = (): void => {
          const finish = (): void => {
            tally.end(ctx.signal);
            reject(ctx.signal.reason as Error);
          };
          if (lingerMs === 0) finish();
          else setTimeout(finish, lingerMs);
        };
        if (ctx.signal.aborted) stop();
        else ctx.signal.addEventListener('abort', stop);
      });
    },
    chat: async (requests, ctx) => {
      tally.start();
      try {
        for await (const _ of requests);
      } catch {
        // the stream was reset: what we count is the signal
      } finally {
        tally.end(ctx.signal);
      }
      return [];
    },
    count: async (requests) => {
      let n = 0;
      for await (const _ of requests) n++;
      return Uint8Array.of(n);
    },
  });
}

// ---------------------------------------------------------------- frames

/** OPEN + its request (+ a RESET when `cancel`) for each stream id from `firstId` on, as one buffer. */
function calls(firstId: number, count: number, method: Uint8Array, after: 'cancel' | 'end-mid-message' | 'nothing'): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = 0, id = firstId; i < count; i++, id += 2) {
    parts.push(encodeFrame({ type: FrameType.OPEN, flags: 0, streamId: id, payload: encodeOpen(0, 0, method) }));
    if (after === 'end-mid-message') {
      // a valid bidi call, then half a message and END: we must reset the stream (MadeYouReset)
      parts.push(encodeFrame({ type: FrameType.DATA, flags: 0, streamId: id, payload: Uint8Array.of(0xc0) }));
      parts.push(encodeFrame({ type: FrameType.END, flags: 0, streamId: id, payload: encodeEnd(Status.OK, '') }));
      continue;
    }
    parts.push(encodeFrame({ type: FrameType.DATA, flags: END_OF_REQUEST, streamId: id, payload: NULL_REQUEST }));
    if (after === 'cancel') parts.push(encodeFrame({ type: FrameType.RESET, flags: 0, streamId: id, payload: encodeReset(Status.CANCELLED, 'never mind') }));
  }
  return Buffer.concat(parts);
}

/**
 * Writes batches of calls (`batch` makes `perBatch` of them from a first stream id) as fast as the socket takes them,
 * until the server closes the connection or `ms` pass; with `between`, waits for it after each batch instead.
 */
async function floodCalls(a: Attacker, perBatch: number, batch: (firstId: number) => Uint8Array, ms: number, between?: () => Promise<void>): Promise<void> {
  let gone = false;
  void a.gone.then(() => (gone = true));
  const endsAt = performance.now() + ms;
  for (let id = 1; !gone && !a.socket.destroyed && performance.now() < endsAt; id += 2 * perBatch) {
    if (a.write(batch(id))) await (between?.() ?? new Promise((resolve) => setImmediate(resolve)));
    else await Promise.race([drainedOrClosed(a), sleep(Math.max(0, endsAt - performance.now()))]);
  }
}

/** Resolves when the attacker's socket drains or closes (an EPIPE once the server is gone is an 'error', then 'close'). */
function drainedOrClosed(a: Attacker): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      a.socket.off('drain', done);
      a.socket.off('close', done);
      resolve();
    };
    a.socket.on('drain', done);
    a.socket.on('close', done);
  });
}

/**
 * a.flood(), where the server destroying the socket meanwhile (EPIPE, ECONNRESET: the flood's wait for 'drain'
 * rejects with the socket's error) is the end of the flood, not a failure of the test.
 */
async function flood(a: Attacker, bytes: Uint8Array, ms: number): Promise<number> {
  try {
    return (await a.flood(bytes, ms)).written;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EPIPE' || code === 'ECONNRESET') return -1;
    throw error;
  }
}

/** The GOAWAY the raw peer received, decoded; fails unless it is ENHANCE_YOUR_CALM. */
async function calmGoaway(raw: RawPeer, what: string): Promise<string> {
  const goaway = await raw.waitFor((f) => f.type === FrameType.GOAWAY, 2000, `GOAWAY after ${what}`);
  const { code, message } = decodeGoaway(goaway.payload);
  assert.equal(code, ConnectionCode.ENHANCE_YOUR_CALM, `${what}: GOAWAY code ${code}: ${message}`);
  return message;
}

/** A PING round trip proves the session still reads and answers; no GOAWAY has been sent. */
async function assertAlive(raw: RawPeer, opaque: bigint, what: string): Promise<void> {
  await pingBarrier(raw, opaque);
  const goaway = raw.frames.find((f: RawFrame) => f.type === FrameType.GOAWAY);
  assert.equal(goaway, undefined, `${what}: closed with ${goaway && decodeGoaway(goaway.payload).message}`);
}

/** A victim serving the echo service and Floods, with the tally of Floods' handlers. */
async function floodsVictim(t: TestContext, options: Parameters<typeof victim>[1] = {}, lingerMs = 0): Promise<{ raw: RawPeer; tally: HandlerTally; v: Awaited<ReturnType<typeof victim>> }> {
  const tally = new HandlerTally();
  const v = await victim(t, { ...options, services: [echoService(), floodsService(tally, lingerMs)] });
  return { raw: v.raw, tally, v };
}

// ---------------------------------------------------------------- T-D1: empty frames, extension frames, CREDIT

void describe('T-D1 empty and extension frames', () => {
  void test('T-D1 empty DATA: 16 in a row are allowed, the 17th closes with ENHANCE_YOUR_CALM naming the flood and the limit; any frame with a payload starts the count again', { timeout: 5000 }, async (t) => {
    const { raw } = await floodsVictim(t);
    raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, COUNT));
    for (let round = 1n; round <= 3n; round++) {
      for (let i = 0; i < 16; i++) raw.send(FrameType.DATA, 0, 1, new Uint8Array(0));
      await assertAlive(raw, round, `16 empty DATA frames, round ${round}`); // the PING has a payload: the count restarts
    }
    for (let i = 0; i < 17; i++) raw.send(FrameType.DATA, 0, 1, new Uint8Array(0));
    const message = await calmGoaway(raw, '17 empty DATA frames');
    assert.match(message, /empty frame flood: more than 16 frames in a row carried nothing/);
  });

  void test('T-D1 empty DATA that ends a message or the stream is an empty message, not a flood: 100 of them are counted by the handler', { timeout: 5000 }, async (t) => {
    const { raw } = await floodsVictim(t);
    raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, COUNT));
    for (let i = 0; i < 100; i++) {
      raw.send(FrameType.DATA, 0, 1, new Uint8Array(0)); // and one that carries nothing between each
      raw.send(FrameType.DATA, Flag.MESSAGE_END, 1, new Uint8Array(0));
    }
    raw.send(FrameType.DATA, Flag.END_STREAM, 1, new Uint8Array(0));
    const answer = await raw.waitFor((f) => f.type === FrameType.DATA && f.streamId === 1, 2000, 'the count');
    assert.deepEqual([...answer.payload], [100]);
    await assertAlive(raw, 1n, '100 empty messages');
  });

  void test('T-D1 extension frames (ignored by this version) count as frames that carry nothing, payload or not, together with empty DATA', { timeout: 5000 }, async (t) => {
    const { raw } = await floodsVictim(t);
    raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, COUNT));
    for (let i = 0; i < 8; i++) raw.send(EXTENSION_TYPE + i, 0, 0, new Uint8Array(0));
    for (let i = 0; i < 4; i++) raw.send(0xff, 0, 3, new Uint8Array(100));
    for (let i = 0; i < 4; i++) raw.send(FrameType.DATA, 0, 1, new Uint8Array(0));
    await assertAlive(raw, 1n, '16 frames that carry nothing');
    for (let i = 0; i < 16; i++) raw.send(EXTENSION_TYPE, 0, 0, new Uint8Array(0));
    raw.send(0xfe, 0, 0, new Uint8Array(10));
    const message = await calmGoaway(raw, '17 extension frames');
    assert.match(message, /empty frame flood: .*the last: an extension frame/);
  });

  void test('T-D1 our own sender never writes an empty DATA that ends neither a message nor the stream (whatever the calls carry)', { timeout: 10_000 }, async (t) => {
    const Shapes = defineService('test.Shapes', {
      echo: unary({ codec: 'raw' }),
      many: serverStream({ codec: 'raw' }),
      gather: clientStream({ codec: 'raw' }),
      chat: bidi({ codec: 'raw' }),
      put: upload<null, number>(),
      get: download<number>(),
    });
    const empty = new Uint8Array(0);
    const shapes = serve(Shapes, {
      echo: (request) => request,
      many: function* () {
        yield empty;
        yield new Uint8Array(70_000);
        yield empty;
      },
      gather: async (requests) => {
        let n = 0;
        for await (const r of requests) n += r.length + 1;
        return Uint8Array.of(n & 0xff);
      },
      chat: (requests) => requests,
      put: async (_request, body) => {
        let n = 0;
        for await (const chunk of body) n += chunk.length;
        return n;
      },
      get: function* (n) {
        yield empty;
        yield new Uint8Array(n);
        yield empty;
      },
    });
    const { caller, callee } = await memoryRpcPair(t, { services: [shapes] }, { services: [shapes] });
    const written = [tapFramesOf(caller), tapFramesOf(callee)];
    for (const from of [caller, callee]) {
      const c = from.client(Shapes);
      assert.equal((await c.echo(empty)).length, 0);
      assert.equal((await c.echo(new Uint8Array(100_000))).length, 100_000);
      const many: Uint8Array[] = [];
      for await (const m of c.many(empty)) many.push(m);
      assert.deepEqual(many.map((m) => m.length), [0, 70_000, 0]);
      assert.deepEqual([...(await c.gather([empty, new Uint8Array(5), empty]))], [8]);
      const echoed: number[] = [];
      for await (const m of c.chat([empty, new Uint8Array(3), empty])) echoed.push(m.length);
      assert.deepEqual(echoed, [0, 3, 0]);
      assert.equal(await c.put(null, [empty, new Uint8Array(200_000), empty]), 200_000);
      assert.equal(await c.put(null, []), 0);
      let got = 0;
      for await (const chunk of c.get(300_000)) got += chunk.length;
      assert.equal(got, 300_000);
      for await (const chunk of c.get(0)) got += chunk.length;
      const aborted = new AbortController();
      await assert.rejects(async () => {
        for await (const _ of c.get(10_000_000, { signal: aborted.signal })) aborted.abort();
      }, /CANCELLED/);
    }
    const frames = written.flat();
    const data = frames.filter((f) => f.type === FrameType.DATA);
    assert.ok(data.length > 20, `only ${data.length} DATA frames were written`);
    const useless = data.filter((f) => f.payload.length === 0 && (f.flags & (Flag.MESSAGE_END | Flag.END_STREAM)) === 0);
    assert.deepEqual(useless, [], 'empty DATA frames that end nothing were written');
    assert.ok(!frames.some((f) => f.type >= EXTENSION_TYPE), 'an extension frame was written');
  });
});

/** Every frame the transport of an RpcSession writes from now on. */
function tapFramesOf(session: { core: object }): RawFrame[] {
  const transport = (session.core as unknown as { transport: Parameters<typeof tapFrames>[0] }).transport;
  assert.ok(transport !== undefined && typeof transport.write === 'function', 'the session transport was not found (renamed?)');
  return tapFrames(transport);
}

void describe('T-D1 CREDIT floods', () => {
  void test('T-D1 CREDIT: 100 before we sent anything are allowed, the 101st closes with ENHANCE_YOUR_CALM naming the flood and its allowance', { timeout: 5000 }, async (t) => {
    const { raw } = await floodsVictim(t);
    for (let i = 0; i < 100; i++) raw.send(FrameType.CREDIT, 0, 0, encodeCredit(1));
    await assertAlive(raw, 1n, '100 CREDIT frames');
    raw.send(FrameType.CREDIT, 0, 0, encodeCredit(1));
    const message = await calmGoaway(raw, '101 CREDIT frames');
    assert.match(message, /CREDIT flood: .*at most 100, plus 4 per DATA frame we wrote and 4 per stream opened/);
  });

  void test('T-D1 CREDIT: what we send earns the peer more (4 per DATA frame, 4 per stream), so an honest peer is never near the limit', { timeout: 5000 }, async (t) => {
    const { raw } = await floodsVictim(t);
    // 50 echo calls: 50 streams and 50 response DATA frames, 400 more CREDIT frames allowed
    for (let id = 1; id < 100; id += 2) {
      raw.send(FrameType.OPEN, 0, id, encodeOpen(0, 0, ECHO));
      raw.send(FrameType.DATA, END_OF_REQUEST, id, msgpackCodec.encode(id));
    }
    await raw.waitFor((f) => f.type === FrameType.DATA && f.streamId === 99, 2000, 'the 50th answer');
    for (let i = 0; i < 500; i++) raw.send(FrameType.CREDIT, 0, 0, encodeCredit(1));
    await assertAlive(raw, 1n, '500 CREDIT frames after 50 calls');
    for (let i = 0; i < 10; i++) raw.send(FrameType.CREDIT, 0, 0, encodeCredit(1));
    await calmGoaway(raw, '510 CREDIT frames after 50 calls');
  });
});

// ---------------------------------------------------------------- T-D2, T-D3: resets both ways

void describe('T-D2 T-D3 resets', () => {
  void test('T-D2 rapid reset: 100 cancels of running handlers fill the cancelled pool unrefused and uncounted; beyond it each cancel keeps its slot and counts, the 201st counted closes with ENHANCE_YOUR_CALM; handlers never exceed 2 x the limit and all saw their signal', { timeout: 10_000 }, async (t) => {
    const LINGER_MS = 300; // handlers return 300 ms after their signal: they outlive every cancel of a round
    const { raw, tally } = await floodsVictim(t, {}, LINGER_MS);
    const refused = (): number => raw.frames.filter((f) => f.type === FrameType.RESET && (f.flags & Flag.REFUSED) !== 0).length;
    let id = 1;
    for (let cycle = 1n; cycle <= 2n; cycle++) {
      raw.sendBytes(calls(id, 100, HANG, 'cancel')); // into the cancelled pool
      id += 200;
      await assertAlive(raw, cycle * 10n, `cycle ${cycle}: 100 cancels in the pool`);
      assert.equal(tally.running, 100);
      raw.sendBytes(calls(id, 100, HANG, 'cancel')); // the pool is full: these count, and hold their slots
      id += 200;
      await assertAlive(raw, cycle * 10n + 1n, `cycle ${cycle}: ${cycle * 100n} counted cancels`);
      assert.equal(tally.running, 200);
      assert.equal(refused(), 0, 'an OPEN was refused');
      await until(() => tally.running === 0, 2000, 'the lingering handlers to return');
    }
    raw.sendBytes(calls(id, 100, HANG, 'cancel')); // the pool again
    await assertAlive(raw, 30n, 'the pool refilled');
    raw.sendBytes(calls(id + 200, 1, HANG, 'cancel'));
    const message = await calmGoaway(raw, '201 counted cancels');
    assert.match(message, /reset flood: more than 200 stream resets in 30 s \(maxResetsPer30s\): .*cancelled 201 calls while 100 cancelled handlers still ran \(Rapid Reset\)/);
    assert.equal(refused(), 0, 'an OPEN was refused');
    await until(() => tally.running === 0, 2000, 'every handler to return');
    assert.equal(tally.started, 501);
    assert.equal(tally.aborted, tally.started, 'every handler saw its AbortSignal');
    assert.ok(tally.maxRunning <= 200, `${tally.maxRunning} handlers ran at once`);
  });

  void test('T-D2 with the cancelled pool full, a cancelled stream keeps its slot: the next OPEN over the limit is refused', { timeout: 10_000 }, async (t) => {
    const { raw, tally } = await floodsVictim(t, { maxConcurrentStreams: 10 }, 300);
    raw.sendBytes(calls(1, 20, HANG, 'cancel')); // 10 into the pool, 10 counted holding their slots
    raw.sendBytes(calls(41, 1, HANG, 'nothing'));
    await assertAlive(raw, 1n, '20 cancels and one more call');
    assert.equal(raw.frames.filter((f) => f.type === FrameType.RESET && (f.flags & Flag.REFUSED) !== 0).length, 1);
    assert.equal(tally.started, 20);
    assert.ok(tally.maxRunning <= 20, `${tally.maxRunning} handlers ran at once`);
    await until(() => tally.running === 0, 2000, 'the lingering handlers to return');
  });

  void test('T-D2 a RESET is counted only while the handler runs: 250 cancels of calls whose handlers have returned (responses stuck behind credit) are not a flood', { timeout: 10_000 }, async (t) => {
    const v = await victim(t);
    let id = 1;
    for (let round = 1n; round <= 5n; round++) {
      const first = id;
      for (let i = 0; i < 50; i++, id += 2) {
        v.raw.send(FrameType.OPEN, 0, id, encodeOpen(0, 1, ECHO)); // window 1: the answer waits for credit
        v.raw.send(FrameType.DATA, END_OF_REQUEST, id, msgpackCodec.encode('x'.repeat(100)));
      }
      await pingBarrier(v.raw, round * 10n); // the handlers have returned
      for (let s = first; s < id; s += 2) v.raw.send(FrameType.RESET, 0, s, encodeReset(Status.CANCELLED, 'never mind'));
      await assertAlive(v.raw, round * 10n + 1n, `${round * 50n} cancels after the handlers returned`);
    }
  });

  void test('T-D2 maxResetsPer30s: a lower limit trips sooner, 0 allows any number, and the default follows maxConcurrentStreams', { timeout: 10_000 }, async (t) => {
    // handlers that outlive the test's cancels: the first maxConcurrentStreams (20) fill the pool, the rest count
    const low = await floodsVictim(t, { maxResetsPer30s: 10, maxConcurrentStreams: 20 }, 300);
    low.raw.sendBytes(calls(1, 30, HANG, 'cancel'));
    await assertAlive(low.raw, 1n, '20 cancels in the pool and 10 counted');
    low.raw.sendBytes(calls(61, 1, HANG, 'cancel'));
    assert.match(await calmGoaway(low.raw, '11 counted cancels'), /more than 10 stream resets/);

    const off = await floodsVictim(t, { maxResetsPer30s: 0, maxConcurrentStreams: 10 }, 20);
    for (let round = 0; round < 12; round++) {
      off.raw.sendBytes(calls(1 + round * 40, 20, HANG, 'cancel')); // 10 in the pool, 10 counted: 120 in all
      await assertAlive(off.raw, BigInt(round + 1), `${(round + 1) * 10} counted cancels with no limit`);
      await until(() => off.tally.running === 0, 2000, 'the lingering handlers to return');
    }

    assert.equal(resolveSessionOptions({}).maxResetsPer30s, 200);
    assert.equal(resolveSessionOptions({ maxConcurrentStreams: 500 }).maxResetsPer30s, 1000);
    assert.equal(resolveSessionOptions({ maxConcurrentStreams: 500, maxResetsPer30s: 50 }).maxResetsPer30s, 50);
    for (const bad of [-1, 1.5, Infinity, Number.NaN]) {
      assert.throws(() => resolveSessionOptions({ maxResetsPer30s: bad }), /maxResetsPer30s must be an integer/);
    }
  });

  void test('T-D3 made-you-reset: 200 streams we reset for what the peer sent on them (END in the middle of a message) are allowed, the 201st closes', { timeout: 10_000 }, async (t) => {
    const { raw, tally } = await floodsVictim(t);
    let id = 1;
    for (let round = 1n; round <= 4n; round++) {
      raw.sendBytes(calls(id, 50, CHAT, 'end-mid-message'));
      id += 100;
      await assertAlive(raw, round, `${round * 50n} provoked resets`);
    }
    const resets = raw.frames.filter((f) => f.type === FrameType.RESET);
    assert.equal(resets.length, 200, 'we reset each of those streams');
    raw.sendBytes(calls(id, 1, CHAT, 'end-mid-message'));
    const message = await calmGoaway(raw, '201 provoked resets');
    assert.match(message, /reset flood: .*made us reset 201 streams for what it sent on them \(MadeYouReset\)/);
    await until(() => tally.running === 0, 1000, 'every handler to return');
    assert.equal(tally.aborted, tally.started, 'every handler saw its AbortSignal');
  });

  void test('T-D3 our own resets and the peer\'s counted cancels share one budget; malformed OPENs and messages over maxMessageBytes count too', { timeout: 10_000 }, async (t) => {
    const { raw, tally } = await floodsVictim(t, { maxMessageBytes: 16, maxConcurrentStreams: 50, maxResetsPer30s: 200 }, 300);
    raw.sendBytes(calls(1, 100, HANG, 'cancel')); // 50 fill the cancelled pool, 50 count
    await pingBarrier(raw, 1n);
    await until(() => tally.running === 0, 2000, 'the lingering handlers to return'); // (none is refused below)
    raw.sendBytes(calls(201, 50, CHAT, 'end-mid-message')); // 50 provoked
    await pingBarrier(raw, 2n);
    await until(() => tally.running === 0, 2000, 'the chat handlers to return');
    for (let i = 0, id = 301; i < 50; i++, id += 2) raw.send(FrameType.OPEN, 0, id, Uint8Array.of(1, 2, 3)); // malformed OPEN
    for (let i = 0, id = 401; i < 50; i++, id += 2) {
      raw.send(FrameType.OPEN, 0, id, encodeOpen(0, 0, CHAT));
      raw.send(FrameType.DATA, Flag.MESSAGE_END, id, new Uint8Array(17)); // over maxMessageBytes
    }
    await assertAlive(raw, 3n, '200 resets of four kinds');
    assert.equal(raw.frames.filter((f) => f.type === FrameType.RESET).length, 150, 'we reset 150 streams');
    raw.send(FrameType.OPEN, 0, 501, Uint8Array.of(1, 2, 3));
    const message = await calmGoaway(raw, 'the 201st reset');
    assert.match(message, /cancelled 50 calls .* made us reset 151 streams/);
  });
});

// ---------------------------------------------------------------- T-D6: refusals

void describe('T-D6 refused streams', () => {
  void test('T-D6 100 OPENs refused over maxConcurrentStreams are allowed in 30 s, the 101st closes with ENHANCE_YOUR_CALM', { timeout: 5000 }, async (t) => {
    const { raw, tally } = await floodsVictim(t, { maxConcurrentStreams: 1 });
    raw.sendBytes(calls(1, 1, HANG, 'nothing')); // holds the one slot
    raw.sendBytes(calls(3, 100, HANG, 'nothing'));
    await assertAlive(raw, 1n, '100 refusals');
    assert.equal(raw.frames.filter((f) => f.type === FrameType.RESET && (f.flags & Flag.REFUSED) !== 0).length, 100);
    raw.sendBytes(calls(203, 1, HANG, 'nothing'));
    const message = await calmGoaway(raw, 'the 101st refusal');
    assert.match(message, /refused stream flood: more than 100 of the peer's OPENs refused in 30 s/);
    await until(() => tally.running === 0, 1000, 'the handler to return');
    assert.equal(tally.started, 1);
    assert.equal(tally.aborted, 1);
  });

  void test('T-D6 OPENs refused while we shut down count too', { timeout: 5000 }, async (t) => {
    const { raw, v } = await floodsVictim(t);
    raw.sendBytes(calls(1, 1, HANG, 'nothing')); // keeps the drain going
    await pingBarrier(raw, 1n);
    void v.session.close({ graceMs: 60_000 });
    await raw.waitFor((f) => f.type === FrameType.GOAWAY, 1000, 'the graceful GOAWAY');
    raw.sendBytes(calls(3, 101, HANG, 'nothing'));
    const goaways = async (): Promise<RawFrame[]> => {
      await until(() => raw.frames.filter((f) => f.type === FrameType.GOAWAY).length === 2, 2000, 'a second GOAWAY');
      return raw.frames.filter((f) => f.type === FrameType.GOAWAY);
    };
    const second = decodeGoaway((await goaways())[1]!.payload);
    assert.equal(second.code, ConnectionCode.ENHANCE_YOUR_CALM);
    assert.match(second.message, /refused stream flood/);
  });
});

// ---------------------------------------------------------------- honest callers that cancel

const Slow = defineService('test.Slow', {
  /** Takes 200 ms whatever its signal says (a handler that does not look at it). */
  slow: unary<number, number>(),
  /** Waits for its signal. */
  wait: unary<null, null>(),
});

void describe('T-D2 T-D6 honest callers that cancel are not a flood', () => {
  void test('T-D2 T-D6 a default client over TCP aborts 50 in-flight calls at a time against 200 ms handlers (350 aborts, 30 other calls open): no refusal flood, no GOAWAY, every later call succeeds', { timeout: 20_000 }, async (t) => {
    const warnings: string[] = [];
    const server = await listen('tcp://127.0.0.1:0', {
      services: [serve(Slow, {
        slow: async (n) => {
          await sleep(200);
          return n;
        },
        wait: (_request, ctx) => new Promise<null>((resolve) => ctx.signal.addEventListener('abort', () => resolve(null))),
      })],
      log: (level, message) => {
        if (level === 'warn') warnings.push(message);
      },
    });
    const client = await connect(server.url);
    t.after(async () => {
      client.destroy();
      await server.close({ graceMs: 0 });
    });
    const c = client.client(Slow);
    const background = new AbortController();
    const others = Array.from({ length: 30 }, () => c.wait(null, { signal: background.signal }).catch(() => undefined));
    const failures: string[] = [];
    let cancelled = 0;
    // each round's cancels reach the server while its handlers (and the last round's) still run: before the cancelled
    // pool, those held their slots, so the next round's OPENs were refused (30 + 50 + 50 > 100) until the connection died
    for (let round = 0; round < 7; round++) {
      const aborts = new AbortController();
      const batch = Array.from({ length: 50 }, (_, i) =>
        c.slow(i, { signal: aborts.signal }).then(
          () => failures.push('a call was not cancelled'),
          (error: { code?: number; message?: string }) => (error.code === Status.CANCELLED ? cancelled++ : failures.push(String(error.message))),
        ),
      );
      await sleep(20);
      aborts.abort();
      await Promise.all(batch);
      await sleep(100);
    }
    assert.deepEqual(failures.slice(0, 3), []);
    assert.equal(cancelled, 350);
    const later = await Promise.all(Array.from({ length: 50 }, (_, i) => c.slow(i)));
    assert.deepEqual(later, Array.from({ length: 50 }, (_, i) => i));
    background.abort();
    await Promise.all(others);
    assert.deepEqual(warnings, [], 'the server closed the connection');
  });

  void test('T-D2 250 user aborts of running handlers within 30 s: the connection stays up', { timeout: 20_000 }, async (t) => {
    const tally = new HandlerTally();
    const { caller } = await memoryRpcPair(t, {}, { services: [echoService(), floodsService(tally)] });
    const c = caller.client(Floods);
    for (let round = 1; round <= 10; round++) {
      const aborts = new AbortController();
      const batch = Array.from({ length: 25 }, () => c.hang(null, { signal: aborts.signal }).then(() => 'answered', (error: { code?: number }) => error.code));
      await until(() => tally.started === round * 25, 2000, `round ${round}: the handlers to run`);
      aborts.abort();
      assert.deepEqual(new Set(await Promise.all(batch)), new Set([Status.CANCELLED]));
      await until(() => tally.running === 0, 2000, `round ${round}: the handlers to return`);
    }
    assert.equal(tally.aborted, 250);
    assert.equal(await caller.client(Echo).echo('still up'), 'still up');
  });
});

// ---------------------------------------------------------------- the same attacks at line rate, over TCP

void describe('T-D1 T-D2 T-D3 T-D6 floods at line rate against a default listen()', () => {
  /** Runs `attack` beside the canary and asserts what every DoS test asserts; returns the server's log line. */
  async function underAttack(t: TestContext, name: string, tally: HandlerTally | undefined, attack: (a: Attacker) => Promise<unknown>, lingerMs = 0): Promise<string> {
    const target = await dosTarget(t, { services: [echoService(), floodsService(tally ?? new HandlerTally(), lingerMs)] });
    const rss = new RssWatch();
    const canary = target.startCanary();
    const a = await attacker(t, target.url);
    await attack(a);
    const line = await assertClosedWith(target, CALM);
    assertCanaryHealthy(target, await canary.stop(), name);
    rss.assertUnder(RSS_BUDGET_MIB, name);
    return line;
  }

  void test('T-D1 empty DATA flood: the attacker (never reading) is closed with GW_ERR_ENHANCE_YOUR_CALM, the canary keeps its latency', { timeout: 20_000 }, async (t) => {
    const line = await underAttack(t, 'empty DATA flood', undefined, async (a) => {
      a.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, COUNT));
      await flood(a, repeatFrame(4096, FrameType.DATA, 0, 1), ATTACK_MS);
    });
    assert.match(line, /empty frame flood/);
  });

  void test('T-D1 extension-frame flood: closed with GW_ERR_ENHANCE_YOUR_CALM, the canary keeps its latency', { timeout: 20_000 }, async (t) => {
    const line = await underAttack(t, 'extension-frame flood', undefined, (a) => flood(a, repeatFrame(4096, EXTENSION_TYPE, 0, 0), ATTACK_MS));
    assert.match(line, /empty frame flood/);
  });

  void test('T-D1 CREDIT flood: closed with GW_ERR_ENHANCE_YOUR_CALM, the canary keeps its latency', { timeout: 20_000 }, async (t) => {
    const line = await underAttack(t, 'CREDIT flood', undefined, (a) => flood(a, repeatFrame(4096, FrameType.CREDIT, 0, 0, encodeCredit(1)), ATTACK_MS));
    assert.match(line, /CREDIT flood/);
  });

  void test('T-D1 a failed connection is not read any more: what the attacker still sends piles up in the kernel, not in our CPU', { timeout: 20_000 }, async (t) => {
    const target = await dosTarget(t);
    const rss = new RssWatch();
    const canary = target.startCanary();
    const a = await attacker(t, target.url);
    a.send(FrameType.CREDIT, 0, 0, encodeCredit(0)); // a protocol error: the session fails at once
    await sleep(50);
    // within the 2 s the failed connection lingers before it is destroyed
    const written = await flood(a, repeatFrame(64, EXTENSION_TYPE, 0, 0, new Uint8Array(1000)), 1500);
    t.diagnostic(`the attacker wrote ${(written / 1024 / 1024).toFixed(1)} MiB in 1.5 s after the failure`);
    // read and discarded, loopback takes hundreds of MiB in 1.5 s; paused, only what the socket buffers hold
    assert.ok(written >= 0 && written < 32 * 1024 * 1024, `the attacker wrote ${(written / 1024 / 1024).toFixed(1)} MiB after the failure`);
    await assertClosedWith(target, 'GW_ERR_FLOW_CONTROL');
    assertCanaryHealthy(target, await canary.stop(), 'flood after the failure');
    rss.assertUnder(RSS_BUDGET_MIB, 'flood after the failure');
  });

  void test('T-D2 rapid reset at line rate with slow handlers: closed with GW_ERR_ENHANCE_YOUR_CALM (refused stream flood); running handlers never exceed 2 x maxConcurrentStreams; every handler saw its AbortSignal', { timeout: 20_000 }, async (t) => {
    const tally = new HandlerTally();
    const line = await underAttack(
      t,
      'rapid reset',
      tally,
      (a) => floodCalls(a, 50, (id) => calls(id, 50, HANG, 'cancel'), ATTACK_MS),
      200, // a slow handler: returns 200 ms after its signal, holding its slot meanwhile
    );
    // within 200 ms the attacker's cancels fill the cancelled pool (100), then `active` with counted cancels (100);
    // every OPEN after that is refused, and the 101st refusal comes before the 201st counted reset
    assert.match(line, /refused stream flood/);
    await until(() => tally.running === 0, 2000, 'every handler to return');
    assert.ok(tally.started > 0, 'no handler ran');
    assert.equal(tally.aborted, tally.started, 'every handler saw its AbortSignal');
    assert.ok(tally.maxRunning <= 200, `${tally.maxRunning} handlers ran at once`);
  });

  void test('T-D3 made-you-reset at line rate (a valid call, then END in the middle of a message, again and again): closed with GW_ERR_ENHANCE_YOUR_CALM', { timeout: 20_000 }, async (t) => {
    const tally = new HandlerTally();
    // each batch of 50 as soon as the last one's handlers have returned: no read brings more calls than slots (a
    // handler's slot frees only once it has returned, after the read), so nothing is refused and the resets trip
    const line = await underAttack(t, 'made-you-reset', tally, (a) => {
      let sent = 0;
      const returned = async (): Promise<void> => {
        sent += 50;
        // (the connection closing stops the batch short: the loop sees it)
        await until(() => (tally.started >= sent && tally.running === 0) || a.socket.destroyed, ATTACK_MS, 'the handlers to return').catch(() => undefined);
        await sleep(1); // the slot frees once the handler's promise has settled
      };
      return floodCalls(a, 50, (id) => calls(id, 50, CHAT, 'end-mid-message'), ATTACK_MS, returned);
    });
    assert.match(line, /reset flood: .*made us reset \d+ streams/);
    await until(() => tally.running === 0, 2000, 'every handler to return');
    assert.equal(tally.aborted, tally.started, 'every handler saw its AbortSignal');
    assert.ok(tally.maxRunning <= 100, `${tally.maxRunning} handlers ran at once`);
  });

  void test('T-D6 refusals: 100 calls that hang, then OPENs over the limit at line rate: closed with GW_ERR_ENHANCE_YOUR_CALM after 100 refusals', { timeout: 20_000 }, async (t) => {
    const tally = new HandlerTally();
    const line = await underAttack(t, 'refusals', tally, async (a) => {
      a.write(calls(1, 100, HANG, 'nothing'));
      await until(() => tally.running === 100, 2000, '100 handlers running');
      await floodCalls(a, 50, (id) => calls(id + 200, 50, HANG, 'nothing'), ATTACK_MS);
    });
    assert.match(line, /refused stream flood/);
    await until(() => tally.running === 0, 2000, 'every handler to return');
    assert.equal(tally.started, 100);
    assert.equal(tally.aborted, 100);
  });
});
