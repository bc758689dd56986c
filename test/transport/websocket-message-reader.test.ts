/**
 * BinaryMessageReader (src/transport/websocket-message-reader.ts) in front of a real ws Receiver, fed raw WebSocket
 * frames split at every offset, in one-byte reads and in random reads: what comes out (binary and text messages,
 * pings, pongs, the close, ws's errors) is what ws's Receiver alone gives for the same bytes, in the same order; the
 * messages gridwire's peers send (whole binary frames, masked with the zero key by a client) come from the reader, as
 * views of the reads; every other frame reaches ws byte for byte; after a close frame or an error nothing more comes;
 * and a message that takes more reads than the bound is reported as dribbled, never delivered.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as ws from 'ws';

import { BinaryMessageReader } from '../../src/transport/websocket-message-reader.js';
import { WEBSOCKET_MAX_MESSAGE_BYTES } from '../../src/wire/constants.js';

/** ws's Receiver: exported at run time, not declared by @types/ws. */
interface Receiver {
  write(chunk: Buffer): boolean;
  readonly writable: boolean;
  on(event: string, listener: (...args: never[]) => void): this;
}
const ReceiverClass = (ws as unknown as { Receiver: new (options: object) => Receiver }).Receiver;

const ZERO_KEY = [0, 0, 0, 0];

interface FrameOptions {
  fin?: boolean;
  /** The masking key; none: unmasked. */
  key?: readonly number[];
  /** RSV bits (0x40, 0x20, 0x10). */
  rsv?: number;
}

/** One WebSocket frame, as RFC 6455 §5.2 lays it out (the shortest length form). */
function frame(opcode: number, payload: Uint8Array | string, { fin = true, key, rsv = 0 }: FrameOptions = {}): Buffer {
  const body = Buffer.from(payload);
  const length = body.length;
  const extended = length < 126 ? 0 : length < 65_536 ? 2 : 8;
  const header = Buffer.alloc(2 + extended + (key ? 4 : 0));
  header[0] = (fin ? 0x80 : 0) | rsv | opcode;
  header[1] = (key ? 0x80 : 0) | (extended === 0 ? length : extended === 2 ? 126 : 127);
  if (extended === 2) header.writeUInt16BE(length, 2);
  if (extended === 8) header.writeUInt32BE(length, 6);
  if (key) {
    header.set(key, 2 + extended);
    for (let i = 0; i < length; i++) body[i]! ^= key[i % 4]!;
  }
  return Buffer.concat([header, body]);
}

/** A payload of `n` bytes that differ from one another. */
function bytes(n: number, seed = 1): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + seed * 13) & 0xff;
  return out;
}

type Event = readonly [string, string];

interface Run {
  events: Event[];
  /** Messages the reader delivered (the rest came through ws). */
  taken: number;
  /** Pieces the reader delivered that were not views of a read fed to it. */
  copies: number;
  dribbled: number[];
  /** Bytes the reader passed on to ws. */
  passed: number;
}

function newReceiver(isServer: boolean): Receiver {
  return new ReceiverClass({ isServer, maxPayload: WEBSOCKET_MAX_MESSAGE_BYTES, maxFragments: 64, maxBufferedChunks: 1024 });
}

/** ws's events, logged (a message's payload as hex). */
function logEvents(receiver: Receiver, events: Event[]): void {
  receiver.on('message', (data: Buffer, isBinary: boolean) => void events.push([isBinary ? 'binary' : 'text', data.toString('hex')]));
  receiver.on('ping', (data: Buffer) => void events.push(['ping', data.toString('hex')]));
  receiver.on('pong', (data: Buffer) => void events.push(['pong', data.toString('hex')]));
  receiver.on('conclude', (code: number) => void events.push(['close', String(code)]));
  receiver.on('error', (error: Error & { code?: string }) => void events.push(['error', error.code ?? error.message]));
}

/** Each read in a buffer of its own (so a view of one is told from a copy). */
function cut(stream: Buffer, at: readonly number[]): Buffer[] {
  const bounds = [0, ...at, stream.length];
  const reads: Buffer[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    if (bounds[i + 1]! <= bounds[i]!) continue;
    const read = Buffer.alloc(bounds[i + 1]! - bounds[i]!);
    stream.copy(read, 0, bounds[i]!, bounds[i + 1]!);
    reads.push(read);
  }
  return reads;
}

/** ws's Receiver alone, all of `stream` in one write: the reference. */
async function wsAlone(stream: Buffer, isServer: boolean): Promise<Event[]> {
  const receiver = newReceiver(isServer);
  const events: Event[] = [];
  logEvents(receiver, events);
  receiver.write(Buffer.from(stream)); // a copy: ws unmasks in place
  await new Promise((resolve) => setImmediate(resolve)); // ws reports errors on a later tick
  return events;
}

/** The reader in front of a fresh Receiver, fed `reads` as the socket would. */
async function withReader(reads: readonly Buffer[], isServer: boolean, maxReads = 1024): Promise<Run> {
  const receiver = newReceiver(isServer);
  const run: Run = { events: [], taken: 0, copies: 0, dribbled: [], passed: 0 };
  logEvents(receiver, run.events);
  const passOn = receiver.write.bind(receiver);
  (receiver as { write: (chunk: Buffer) => boolean }).write = (chunk) => {
    run.passed += chunk.length;
    return passOn(chunk);
  };
  const buffers = new Set(reads.map((r) => r.buffer));
  let message: Buffer[] = [];
  const reader = BinaryMessageReader.install({ _receiver: receiver }, {
    binaryPiece(piece, last) {
      if (!buffers.has(piece.buffer)) run.copies++;
      message.push(piece);
      if (!last) return;
      run.taken++;
      run.events.push(['binary', Buffer.concat(message).toString('hex')]);
      message = [];
    },
    dribbled: (n) => void run.dribbled.push(n),
  }, { peerMasks: isServer, maxReads });
  assert.ok(reader, 'installed in front of a ws Receiver');
  run.passed = 0;
  for (const read of reads) receiver.write(read); // now the reader's
  await new Promise((resolve) => setImmediate(resolve));
  return run;
}

/** What a client sends a server: gridwire's messages (zero key) among everything else a WebSocket may carry. */
function clientStream(big: number): { stream: Buffer; gridwire: number; others: number } {
  const z = { key: ZERO_KEY };
  const frames = [
    frame(2, bytes(1), z),
    frame(9, 'abc', z), // ping
    frame(2, bytes(300, 2), z), // 16-bit length
    frame(1, 'text', z),
    frame(2, bytes(5, 3), { key: [1, 2, 3, 4] }), // another key: ws unmasks it
    frame(2, 'ab', { ...z, fin: false }), // a fragmented message, a pong inside it
    frame(10, 'p', z),
    frame(0, 'cd', z),
    frame(2, '', z), // empty
    frame(2, bytes(big, 4), z),
    frame(2, bytes(2, 5), z),
  ];
  return { stream: Buffer.concat(frames), gridwire: 4, others: 3 };
}

/** What a server sends a client: the same, unmasked. */
function serverStream(big: number): { stream: Buffer; gridwire: number; others: number } {
  const frames = [
    frame(2, bytes(1)),
    frame(9, 'abc'),
    frame(2, bytes(300, 2)),
    frame(1, 'text'),
    frame(2, 'ab', { fin: false }),
    frame(10, 'p'),
    frame(0, 'cd'),
    frame(2, ''),
    frame(2, bytes(big, 4)),
    frame(2, bytes(2, 5)),
  ];
  return { stream: Buffer.concat(frames), gridwire: 4, others: 2 };
}

/** A deterministic random split of `length` bytes into reads. */
function randomCuts(length: number, seed: number): number[] {
  let x = seed;
  const at: number[] = [];
  for (let p = 0; p < length; ) {
    x = (x * 1_103_515_245 + 12_345) & 0x7fffffff;
    p += 1 + (x % 97);
    if (p < length) at.push(p);
  }
  return at;
}

for (const [role, isServer, make] of [
  ['an acceptor reading a client', true, clientStream],
  ['a dialer reading a server', false, serverStream],
] as const) {
  void describe(`BinaryMessageReader, ${role}`, () => {
    void test('every split into two reads, one-byte reads and random reads: the same events as ws alone; gridwire\'s messages taken as views, the rest passed on', async () => {
      const { stream, gridwire, others } = make(200);
      const expected = await wsAlone(stream, isServer);
      assert.equal(expected.filter(([kind]) => kind === 'binary').length, gridwire + others, 'the reference sees every binary message');
      const splits: number[][] = [];
      for (let at = 1; at < stream.length; at++) splits.push([at]);
      splits.push(Array.from({ length: stream.length - 1 }, (_, i) => i + 1));
      for (let seed = 1; seed <= 50; seed++) splits.push(randomCuts(stream.length, seed));
      for (const at of splits) {
        const run = await withReader(cut(stream, at), isServer);
        assert.deepEqual(run.events, expected, `reads cut at ${at.slice(0, 8).join(',')}...`);
        assert.equal(run.taken, gridwire, 'gridwire\'s messages come from the reader');
        assert.equal(run.copies, 0, 'as views of the reads');
        assert.deepEqual(run.dribbled, []);
      }
    });

    void test('a message of WEBSOCKET_MAX_MESSAGE_BYTES (64-bit length) straddling reads: taken, as views; one byte more goes to ws, which refuses it (1009)', async () => {
      const { stream, gridwire } = make(WEBSOCKET_MAX_MESSAGE_BYTES);
      const expected = await wsAlone(stream, isServer);
      for (const at of [[], [65_536], [1_000, 65_536, 65_540], randomCuts(stream.length, 7).filter((_, i) => i % 50 === 0)]) {
        const run = await withReader(cut(stream, at), isServer);
        assert.deepEqual(run.events, expected);
        assert.equal(run.taken, gridwire);
        assert.equal(run.copies, 0);
      }
      const over = Buffer.concat([frame(2, bytes(1), isServer ? { key: ZERO_KEY } : {}), frame(2, bytes(WEBSOCKET_MAX_MESSAGE_BYTES + 1), isServer ? { key: ZERO_KEY } : {})]);
      const run = await withReader(cut(over, [100, 65_536]), isServer);
      assert.deepEqual(run.events.map(([kind, what]) => (kind === 'binary' ? kind : `${kind} ${what}`)), ['binary', 'error WS_ERR_UNSUPPORTED_MESSAGE_LENGTH']);
      assert.deepEqual(await wsAlone(over, isServer).then((e) => e.map(([kind, what]) => (kind === 'binary' ? kind : `${kind} ${what}`))), ['binary', 'error WS_ERR_UNSUPPORTED_MESSAGE_LENGTH']);
    });
  });
}

void describe('BinaryMessageReader: where it stops', () => {
  const z = { key: ZERO_KEY };

  void test('after a close frame nothing more is delivered or passed on, in the same read or a later one', async () => {
    const stream = Buffer.concat([frame(2, 'x', z), frame(8, Buffer.from([0x03, 0xe8]), z), frame(2, 'y', z), frame(9, 'late', z)]);
    for (let at = 1; at < stream.length; at++) {
      const run = await withReader(cut(stream, [at]), true);
      assert.deepEqual(run.events, [['binary', '78'], ['close', '1000']], `cut at ${at}`);
    }
  });

  void test('after a frame ws refuses (RSV2 set) nothing more is delivered: ws\'s error, as ws alone', async () => {
    const stream = Buffer.concat([frame(2, 'x', z), frame(2, 'bad', { ...z, rsv: 0x20 }), frame(2, 'y', z)]);
    const expected = await wsAlone(stream, true);
    assert.deepEqual(expected, [['binary', '78'], ['error', 'WS_ERR_UNEXPECTED_RSV_2_3']]);
    for (let at = 1; at < stream.length; at++) assert.deepEqual((await withReader(cut(stream, [at]), true)).events, expected, `cut at ${at}`);
  });

  void test('a client frame without a mask, or a server frame with one: ws refuses it, as alone', async () => {
    for (const [isServer, bad] of [[true, frame(2, 'x')], [false, frame(2, 'x', z)]] as const) {
      const expected = await wsAlone(bad, isServer);
      assert.equal(expected[0]?.[0], 'error');
      assert.deepEqual((await withReader(cut(bad, [3]), isServer)).events, expected);
    }
  });

  void test('a message still incomplete after maxReads reads: dribbled (once), nothing delivered, nothing more read; within the bound it is delivered', async () => {
    const message = frame(2, bytes(40), z);
    const header = 6;
    const oneByteReads = Array.from({ length: message.length - header - 1 }, (_, i) => header + i + 1);
    const tooSlow = await withReader(cut(Buffer.concat([message, frame(2, 'y', z)]), oneByteReads), true, 16);
    assert.deepEqual(tooSlow.dribbled, [16]);
    assert.deepEqual(tooSlow.events, []);
    assert.equal(tooSlow.passed, 0);
    const inTime = await withReader(cut(message, oneByteReads), true, 40);
    assert.deepEqual(inTime.dribbled, []);
    assert.equal(inTime.taken, 1);
  });

  void test('install() leaves alone a WebSocket without the Receiver it expects', () => {
    const sink = { binaryPiece: () => undefined, dribbled: () => undefined };
    const options = { peerMasks: true, maxReads: 1024 };
    assert.equal(BinaryMessageReader.install({}, sink, options), undefined);
    assert.equal(BinaryMessageReader.install({ _receiver: null }, sink, options), undefined);
    assert.equal(BinaryMessageReader.install({ _receiver: { write: 1, writable: true } }, sink, options), undefined);
  });
});
