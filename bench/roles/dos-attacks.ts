// The attacks of the dos suite (issue 10's table), each a function that opens its raw connections (dos-wire.ts) and
// attacks until its deadline; `runAttack` then reads what the server sent (an attacker that never read reads now,
// for DRAIN_MS) and tells how each connection ended: a GOAWAY and its code, a closed socket, or still open.
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import type { DosAttackReport } from '../messages.js';
import {
  AttackConn, binMessage, Flag, frame, FrameType, hello, manyKeysMessage, nilArrayMessage, openPayload, repeat, u32,
} from './dos-wire.js';

/** After the attack, how long an attacker reads to find the server's GOAWAY (behind whatever it did not read). */
const DRAIN_MS = 2_000;
const ECHO = 'bench.dos/echo';
const UNKNOWN = 'bench.dos/nope';
const MAX_MESSAGE = 4 * 1024 * 1024;
const MAX_WINDOW = 0x7fff_ffff;
/** The 32-byte echo request the canary sends too. */
const SMALL_REQUEST = binMessage(32);

interface Attack {
  url: string;
  /** performance.now() at which to stop. */
  until: number;
  /** Every connection opened, for the report. */
  conns: AttackConn[];
  sent: { frames: number; bytes: number };
}

export const ATTACKS = {
  'fragments-8': {
    title: '1-byte DATA fragments that never end a message, on 8 streams (within the credit the server grants)',
    run: fragments,
  },
  'unknown-method': { title: 'OPENs for an unknown method, never reading the socket', run: (a: Attack) => openFlood(a, UNKNOWN, 'none') },
  'empty-data': { title: 'empty DATA frames on one open stream, never reading', run: emptyData },
  'credit-flood': { title: 'CREDIT frames of 1 on stream 0, never reading', run: creditFlood },
  'rapid-reset': { title: 'Rapid Reset: OPEN, request, RESET, on new streams, never reading', run: (a: Attack) => openFlood(a, ECHO, 'reset') },
  'made-you-reset': {
    title: 'MadeYouReset: OPEN then a malformed END the server answers with a RESET, on new streams, never reading',
    run: (a: Attack) => openFlood(a, ECHO, 'bad-end'),
  },
  'ping-flood': { title: 'PING frames, never reading', run: pingFlood },
  'map-699k': {
    title: '4 MiB echo requests that are a map of 699k short keys, two at a time',
    run: (a: Attack) => bigRequests(a, manyKeysMessage((MAX_MESSAGE - 5) / 6 | 0), 2),
  },
  'nil-array-4m': {
    title: '4 MiB echo requests that are an array of 4M nils, two at a time',
    run: (a: Attack) => bigRequests(a, nilArrayMessage(MAX_MESSAGE - 5), 2),
  },
  'zero-window-echo': {
    title: 'HELLO with zero windows, then 100 x 4 MiB echo requests, never granting credit for the responses',
    run: zeroWindowEcho,
  },
  'half-frame-500': { title: '500 connections that send a HELLO and half a frame header, then nothing', run: halfFrames },
  'stalled-handshake-300': { title: '300 connections that send half a HELLO header, then nothing', run: stalledHandshakes },
} satisfies Record<string, { title: string; run: (a: Attack) => Promise<void> }>;

export type AttackName = keyof typeof ATTACKS;
export const ATTACK_NAMES = Object.keys(ATTACKS) as AttackName[];

export function isAttackName(name: string): name is AttackName {
  return Object.hasOwn(ATTACKS, name);
}

// ---- the driver ----

export async function runAttack(name: AttackName, url: string, seconds: number): Promise<DosAttackReport> {
  const attack: Attack = { url, until: performance.now() + seconds * 1000, conns: [], sent: { frames: 0, bytes: 0 } };
  const started = performance.now();
  let error: string | undefined;
  try {
    await ATTACKS[name].run(attack);
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
  }
  const left = attack.until - performance.now();
  if (left > 0) await sleep(left);
  await Promise.all(attack.conns.map((c) => c.readFor(DRAIN_MS)));
  const goaways: Record<string, number> = {};
  let closed = 0;
  let firstCloseMs = Infinity;
  for (const c of attack.conns) {
    if (c.goaway !== undefined) {
      const key = `${c.goaway.code}${c.goaway.message ? `: ${c.goaway.message.slice(0, 100)}` : ''}`;
      goaways[key] = (goaways[key] ?? 0) + 1;
    }
    if (c.gone || c.goaway !== undefined) {
      closed++;
      firstCloseMs = Math.min(firstCloseMs, c.closedAtMs ?? Infinity, c.goaway?.atMs ?? Infinity);
    }
    c.destroy();
  }
  return {
    attack: name,
    connections: attack.conns.length,
    closedByServer: closed,
    goaways,
    firstCloseMs: Number.isFinite(firstCloseMs) ? firstCloseMs : null,
    sentFrames: attack.sent.frames,
    sentBytes: attack.sent.bytes,
    elapsedMs: performance.now() - started,
    error,
  };
}

async function connect(a: Attack, first: Buffer | null, read: boolean): Promise<AttackConn> {
  const conn = await AttackConn.open(a.url, first, read);
  a.conns.push(conn);
  return conn;
}

/** Writes what `batch()` returns again and again until the deadline or the server closes; `frames` per batch. */
async function flood(a: Attack, conn: AttackConn, frames: number, batch: () => Buffer): Promise<void> {
  while (!conn.gone && performance.now() < a.until) {
    const bytes = batch();
    a.sent.frames += frames;
    a.sent.bytes += bytes.length;
    await conn.send(bytes, a.until);
    await nextTurn(); // let the socket's events (an error, a close) in
  }
}

// ---- the attacks ----

async function fragments(a: Attack): Promise<void> {
  const conn = await connect(a, hello(), true);
  while (!conn.helloRead && !conn.gone && performance.now() < a.until) await conn.creditChanged(a.until);
  const streams = Array.from({ length: 8 }, (_, i) => 1 + 2 * i);
  await conn.send(Buffer.concat(streams.map((id) => frame(FrameType.OPEN, 0, id, openPayload(ECHO)))), a.until);
  const oneByte = new Map(streams.map((id) => [id, frame(FrameType.DATA, 0, id, Uint8Array.of(0x5a))]));
  while (!conn.gone && performance.now() < a.until) {
    const parts: Buffer[] = [];
    for (const id of streams) {
      const n = Math.min(conn.creditFor(id), 512);
      if (n <= 0) continue;
      conn.spend(id, n);
      parts.push(repeat(oneByte.get(id)!, n));
      a.sent.frames += n;
    }
    if (parts.length === 0) {
      await conn.creditChanged(a.until);
      continue;
    }
    const bytes = Buffer.concat(parts);
    a.sent.bytes += bytes.length;
    await conn.send(bytes, a.until);
    await nextTurn();
  }
}

/** OPENs on new streams, each alone ('none'), followed by a request and a RESET ('reset'), or by a malformed END. */
async function openFlood(a: Attack, method: string, then: 'none' | 'reset' | 'bad-end'): Promise<void> {
  const conn = await connect(a, hello(), false);
  const open = openPayload(method);
  const perBatch = 256;
  let id = 1;
  const cancelled = Uint8Array.of(1, 0, 0); // RESET: CANCELLED, no message
  const malformedEnd = Uint8Array.of(0xff); // END: a status byte and nothing else
  await flood(a, conn, perBatch * (then === 'none' ? 1 : then === 'reset' ? 3 : 2), () => {
    const parts: Buffer[] = [];
    for (let i = 0; i < perBatch; i++, id += 2) {
      parts.push(frame(FrameType.OPEN, 0, id, open));
      if (then === 'reset') {
        parts.push(frame(FrameType.DATA, Flag.MESSAGE_END | Flag.END_STREAM, id, SMALL_REQUEST), frame(FrameType.RESET, 0, id, cancelled));
      } else if (then === 'bad-end') {
        parts.push(frame(FrameType.END, 0, id, malformedEnd));
      }
    }
    return Buffer.concat(parts);
  });
}

async function emptyData(a: Attack): Promise<void> {
  const conn = await connect(a, hello(), false);
  await conn.send(frame(FrameType.OPEN, 0, 1, openPayload(ECHO)), a.until);
  const batch = repeat(frame(FrameType.DATA, 0, 1), 4096);
  await flood(a, conn, 4096, () => batch);
}

async function creditFlood(a: Attack): Promise<void> {
  const conn = await connect(a, hello(), false);
  const batch = repeat(frame(FrameType.CREDIT, 0, 0, u32(1)), 4096);
  await flood(a, conn, 4096, () => batch);
}

async function pingFlood(a: Attack): Promise<void> {
  const conn = await connect(a, hello(), false);
  const batch = repeat(frame(FrameType.PING, 0, 0, new Uint8Array(8)), 4096);
  await flood(a, conn, 4096, () => batch);
}

/** Sends `message` on stream `id` as DATA frames within the credit the server grants; false if the time ran out. */
async function sendMessage(a: Attack, conn: AttackConn, id: number, message: Buffer): Promise<boolean> {
  await conn.send(frame(FrameType.OPEN, 0, id, openPayload(ECHO)), a.until);
  a.sent.frames++;
  let at = 0;
  while (at < message.length) {
    if (conn.gone || performance.now() >= a.until) return false;
    const n = Math.min(conn.creditFor(id), conn.serverMaxFrameBytes, message.length - at);
    if (n <= 0) {
      await conn.creditChanged(a.until);
      continue;
    }
    conn.spend(id, n);
    const last = at + n === message.length;
    const bytes = frame(FrameType.DATA, last ? Flag.MESSAGE_END | Flag.END_STREAM : 0, id, message.subarray(at, at + n));
    at += n;
    a.sent.frames++;
    a.sent.bytes += bytes.length;
    await conn.send(bytes, a.until);
  }
  conn.forget(id);
  return true;
}

/** Big requests, `parallel` at a time, each on a new stream, until the deadline; responses are read and dropped. */
async function bigRequests(a: Attack, message: Buffer, parallel: number): Promise<void> {
  const conn = await connect(a, hello({ initialStreamWindow: 16 * 1024 * 1024, connectionWindow: MAX_WINDOW }), true);
  while (!conn.helloRead && !conn.gone && performance.now() < a.until) await conn.creditChanged(a.until);
  let id = 1;
  const sender = async (): Promise<void> => {
    while (!conn.gone && performance.now() < a.until) {
      const mine = id;
      id += 2;
      if (!(await sendMessage(a, conn, mine, message))) return;
    }
  };
  await Promise.all(Array.from({ length: parallel }, sender));
}

async function zeroWindowEcho(a: Attack): Promise<void> {
  const conn = await connect(a, hello({ initialStreamWindow: 0, connectionWindow: 0, initialMessageWindow: 1 }), true);
  while (!conn.helloRead && !conn.gone && performance.now() < a.until) await conn.creditChanged(a.until);
  const message = binMessage(MAX_MESSAGE - 11);
  // 100 requests (the server's default stream limit), all at once; the responses can never be sent
  await Promise.all(Array.from({ length: 100 }, (_, i) => sendMessage(a, conn, 1 + 2 * i, message)));
}

/** `count` connections opened `parallel` at a time, each sending `first`; held until the deadline. */
async function manyConnections(a: Attack, count: number, first: Buffer): Promise<void> {
  let left = count;
  const lane = async (): Promise<void> => {
    while (left > 0 && performance.now() < a.until) {
      left--;
      await connect(a, first, true);
      a.sent.frames++;
      a.sent.bytes += first.length;
    }
  };
  await Promise.all(Array.from({ length: 50 }, lane));
}

function halfFrames(a: Attack): Promise<void> {
  return manyConnections(a, 500, Buffer.concat([hello(), frame(FrameType.DATA, 0, 1, new Uint8Array(100)).subarray(0, 5)]));
}

function stalledHandshakes(a: Attack): Promise<void> {
  return manyConnections(a, 300, hello().subarray(0, 5));
}
