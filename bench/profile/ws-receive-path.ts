// What receiving bulk costs above the socket, over ws:// and over tcp://, in CPU ms per GiB: one thread, no socket,
// nothing else running in the process, so the figure holds on a machine shared with other work (the pair suites'
// MiB/s and CPU % swing 2-4x there). 64 KiB DATA frames, laid out as the WebSocket transport sends them (a message for
// the frame header, one for the payload), are cut into 64 KiB "socket reads" made once and fed again and again to:
//   tcp      the same frames without WebSocket framing, straight into gridwire's FrameDecoder (what tcp:// does)
//   ws       ws's Receiver, its 'message' events into the FrameDecoder (what ws:// did before BinaryMessageReader)
//   reader   BinaryMessageReader in front of ws's Receiver, its pieces into the FrameDecoder (what ws:// does)
// The decoder takes DATA payloads that straddle reads as pieces (the session's BulkDataPieces does). Each variant runs
// in a process of its own; the reads themselves (the kernel's copy, the read buffers' allocation) are not counted.
//
//   npx tsx bench/profile/ws-receive-path.ts [--gib 4] [--runs 3]
import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import * as ws from 'ws';

import { FrameType } from '../../src/wire/constants.js';
import { FrameDecoder } from '../../src/wire/decoder.js';
import { writeFrameHeader } from '../../src/wire/frame.js';
import { BinaryMessageReader } from '../../src/transport/websocket-message-reader.js';

const VARIANTS = ['tcp', 'ws', 'reader'] as const;
type Variant = (typeof VARIANTS)[number];
const READ_BYTES = 64 * 1024;
const PAYLOAD_BYTES = 64 * 1024;
/** Frames per pass: 256 MiB of payload. */
const FRAMES = 4096;

interface Writable {
  write(chunk: Buffer): boolean;
  on(event: string, listener: (...args: never[]) => void): unknown;
}
/** ws's Receiver: exported at run time, not declared by @types/ws. */
const Receiver = (ws as unknown as { Receiver: new (options: object) => Writable }).Receiver;

/** A server's WebSocket frame header of one whole binary message of `length` bytes (unmasked). */
function messageHeader(length: number): Buffer {
  const extended = length < 126 ? 0 : length < 65_536 ? 2 : 8;
  const header = Buffer.alloc(2 + extended);
  header[0] = 0x82;
  header[1] = extended === 0 ? length : extended === 2 ? 126 : 127;
  if (extended === 2) header.writeUInt16BE(length, 2);
  if (extended === 8) header.writeUInt32BE(length, 6);
  return header;
}

function measure(variant: Variant, gib: number): number {
  const frameHeader = Buffer.alloc(10);
  writeFrameHeader(frameHeader, 0, FrameType.DATA, 0, 1, PAYLOAD_BYTES);
  const payload = Buffer.alloc(PAYLOAD_BYTES, 0xa5);
  const parts: Buffer[] = [];
  for (let i = 0; i < FRAMES; i++) {
    if (variant === 'tcp') parts.push(frameHeader, payload);
    else parts.push(messageHeader(frameHeader.length), frameHeader, messageHeader(PAYLOAD_BYTES), payload);
  }
  const stream = Buffer.concat(parts);
  const reads: Buffer[] = [];
  for (let at = 0; at < stream.length; at += READ_BYTES) {
    const read = Buffer.allocUnsafeSlow(Math.min(READ_BYTES, stream.length - at));
    stream.copy(read, 0, at, at + read.length);
    reads.push(read);
  }
  let bytes = 0;
  const decoder = new FrameDecoder((_type, _flags, _id, p) => void (bytes += p.length), {
    maxFrameBytes: PAYLOAD_BYTES,
    pieces: { startData: () => true, dataPiece: (p) => void (bytes += p.length) },
  });
  let feed: (read: Buffer) => void;
  if (variant === 'tcp') {
    feed = (read) => decoder.push(read);
  } else {
    const receiver = new Receiver({ isServer: false, maxPayload: PAYLOAD_BYTES + 10, maxFragments: 64, maxBufferedChunks: 1024 });
    receiver.on('message', (data: Buffer) => decoder.push(data));
    receiver.on('error', (error: Error) => {
      throw error;
    });
    if (variant === 'reader') {
      const sink = { binaryPiece: (piece: Buffer) => decoder.push(piece), dribbled: () => assertNever('dribbled') };
      if (!BinaryMessageReader.install({ _receiver: receiver }, sink, { peerMasks: false, maxReads: 1024 })) throw new Error('reader not installed');
    }
    feed = (read) => void receiver.write(read);
  }
  const pass = (): void => {
    for (const read of reads) feed(read);
  };
  pass(); // warm up
  pass();
  bytes = 0;
  const passes = Math.max(1, Math.round((gib * 2 ** 30) / (FRAMES * PAYLOAD_BYTES)));
  const start = process.cpuUsage();
  for (let i = 0; i < passes; i++) pass();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000 / (bytes / 2 ** 30);
}

function assertNever(what: string): never {
  throw new Error(`unexpected: ${what}`);
}

const { values } = parseArgs({ options: { gib: { type: 'string', default: '4' }, runs: { type: 'string', default: '3' }, variant: { type: 'string' } } });
if (values.variant !== undefined) {
  process.send!(measure(values.variant as Variant, Number(values.gib)));
} else {
  const runs = Number(values.runs);
  const figures = new Map<Variant, number[]>(VARIANTS.map((v) => [v, []]));
  for (let run = 0; run < runs; run++) {
    for (const variant of VARIANTS) {
      const child = fork(process.argv[1]!, ['--variant', variant, '--gib', values.gib], { execArgv: process.execArgv });
      const ms = await new Promise<number>((resolve, reject) => {
        child.once('message', (m) => resolve(m as number));
        child.once('exit', (code) => reject(new Error(`${variant}: exited with ${code}`)));
      });
      child.kill();
      figures.get(variant)!.push(ms);
    }
  }
  console.log(`receive path above the socket, CPU ms per GiB of 64 KiB DATA frames (${runs} runs of ${values.gib} GiB, min / each):`);
  for (const [variant, ms] of figures) console.log(`  ${variant.padEnd(7)} ${Math.min(...ms).toFixed(0).padStart(5)}   (${ms.map((x) => x.toFixed(0)).join(', ')})`);
}
