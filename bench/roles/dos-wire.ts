// The dos suite attacker's view of the gridwire wire, written by hand as an attacker would (docs/PROTOCOL.md), so that
// it imports nothing of the library under test: frames, a HELLO, an OPEN, msgpack headers, and AttackConn, one raw
// TCP connection that sends what it is told and, when it reads, tracks the send credit the server grants and the
// GOAWAY it sends. Knows nothing of any one attack (dos-attacks.ts).
import net from 'node:net';
import { performance } from 'node:perf_hooks';

export const FrameType = { HELLO: 1, OPEN: 2, DATA: 3, END: 4, RESET: 5, CREDIT: 6, PING: 7, GOAWAY: 8 } as const;
export const Flag = { MESSAGE_END: 1, END_STREAM: 2, MESSAGES: 1 } as const;
const HEADER_BYTES = 10;
const MAX_WINDOW = 0x7fff_ffff;

const CODE_NAMES = [
  'NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'FRAME_SIZE_ERROR', 'HANDSHAKE_TIMEOUT',
  'VERSION_MISMATCH', 'ENHANCE_YOUR_CALM', 'STREAM_IDS_EXHAUSTED',
];
export const codeName = (code: number): string => CODE_NAMES[code] ?? `CODE_${code}`;

// ---- writing ----

export function frame(type: number, flags: number, streamId: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out[0] = type;
  out[1] = flags;
  out.writeUInt32BE(streamId, 2);
  out.writeUInt32BE(payload.length, 6);
  out.set(payload, HEADER_BYTES);
  return out;
}

/** `count` copies of `unit`, back to back: a flood's unit of writing. */
export function repeat(unit: Buffer, count: number): Buffer {
  const out = Buffer.allocUnsafe(unit.length * count);
  for (let i = 0; i < count; i++) unit.copy(out, i * unit.length);
  return out;
}

export interface HelloWindows {
  initialStreamWindow?: number;
  initialMessageWindow?: number;
  connectionWindow?: number;
}

/** Our HELLO: version 1, the windows given (defaults as a gridwire peer's), frames up to 64 KiB. */
export function hello(windows: HelloWindows = {}): Buffer {
  const settings: Array<[number, number]> = [
    [0x01, 64 * 1024], // MAX_FRAME_BYTES
    [0x02, windows.initialStreamWindow ?? 256 * 1024],
    [0x06, windows.initialMessageWindow ?? 1024],
    [0x03, windows.connectionWindow ?? 16 * 1024 * 1024],
    [0x04, 100], // MAX_CONCURRENT_STREAMS
    [0x05, 4 * 1024 * 1024], // MAX_MESSAGE_BYTES
  ];
  const body = Buffer.alloc(8 + 2 + 2 + 1 + settings.length * 8);
  body.write('GRIDWIRE', 0, 'latin1');
  body.writeUInt16BE(1, 8);
  body.writeUInt16BE(1, 10);
  body[12] = settings.length;
  settings.forEach(([id, value], i) => {
    body.writeUInt16BE(id, 13 + i * 8);
    body.writeUInt16BE(4, 15 + i * 8);
    body.writeUInt32BE(value, 17 + i * 8);
  });
  return frame(FrameType.HELLO, 0, 0, body);
}

/** OPEN payload: no deadline, the HELLO's window, `method`, no metadata. */
export function openPayload(method: string): Buffer {
  const name = Buffer.from(method, 'utf8');
  const out = Buffer.alloc(9 + name.length + 1);
  out[8] = name.length;
  name.copy(out, 9);
  return out;
}

export function u32(n: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(n);
  return out;
}

// ---- messages (msgpack, by hand) ----

/** { data: <n random-ish bytes> }: the echo service's request shape, bin32 so any size fits. */
export function binMessage(n: number): Buffer {
  const out = Buffer.alloc(1 + 5 + 5 + n, 0x5a);
  out[0] = 0x81; // fixmap of 1
  out.write('\xa4data', 1, 'latin1');
  out[6] = 0xc6; // bin32
  out.writeUInt32BE(n, 7);
  return out;
}

/** A map32 of `keys` distinct 4-character keys, each holding nil: 6 bytes per key. */
export function manyKeysMessage(keys: number): Buffer {
  const out = Buffer.alloc(5 + keys * 6);
  out[0] = 0xdf;
  out.writeUInt32BE(keys, 1);
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-';
  for (let i = 0, at = 5; i < keys; i++, at += 6) {
    out[at] = 0xa4;
    for (let d = 0, k = i; d < 4; d++, k >>>= 6) out[at + 1 + d] = alphabet.charCodeAt(k & 63);
    out[at + 5] = 0xc0;
  }
  return out;
}

/** An array32 of `items` nils: 1 byte per item. */
export function nilArrayMessage(items: number): Buffer {
  const out = Buffer.alloc(5 + items, 0xc0);
  out[0] = 0xdd;
  out.writeUInt32BE(items, 1);
  return out;
}

// ---- one connection ----

export interface Goaway {
  code: string;
  message: string;
  /** ms after the connection opened that the GOAWAY was read (late for an attacker that did not read). */
  atMs: number;
}

/**
 * A raw connection. With `read`, frames are parsed as they come: the server's HELLO sets our send credit, CREDIT
 * frames add to it, a GOAWAY is kept. Without, the socket is paused until `readFor` drains it at the end.
 */
export class AttackConn {
  readonly socket: net.Socket;
  readonly openedAt = performance.now();
  goaway: Goaway | undefined;
  /** ms after opening that the server closed the connection, as far as we noticed (EOF, reset, a failed write). */
  closedAtMs: number | undefined;
  /** Our send credit on the connection and per stream (bytes), from the server's HELLO and CREDITs. */
  connectionCredit = 0;
  private initialStreamCredit = 0;
  private readonly streamCredit = new Map<number, number>();
  serverMaxFrameBytes = 16 * 1024;
  helloRead = false;
  framesRead = 0;
  private readonly header = Buffer.alloc(HEADER_BYTES);
  private headerFill = 0;
  private type = 0;
  private streamId = 0;
  private left = 0;
  private keep: Buffer[] | null = null;
  private readonly waiters = new Set<() => void>();

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.parse(chunk));
    socket.on('drain', () => this.wakeAll());
    socket.on('error', () => this.noteClosed());
    socket.on('end', () => this.noteClosed());
    socket.on('close', () => this.noteClosed());
  }

  /** Connects to a gridwire url ('tcp://127.0.0.1:port'), writes `first` (a HELLO, or part of one) when given. */
  static async open(url: string, first: Buffer | null, read: boolean): Promise<AttackConn> {
    const port = Number(/:(\d+)$/.exec(url)?.[1]);
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const conn = new AttackConn(socket);
    if (!read) socket.pause();
    if (first !== null) socket.write(first);
    return conn;
  }

  get gone(): boolean {
    return this.closedAtMs !== undefined || this.socket.destroyed;
  }

  /** Writes; resolves once the socket can take more (or the connection is gone, or `until` passes). */
  async send(bytes: Uint8Array, until: number): Promise<void> {
    if (this.gone) return;
    this.socket.write(bytes);
    while (this.socket.writableNeedDrain && !this.gone && performance.now() < until) await this.event(until);
  }

  /** Send credit available now on `streamId` (the smaller of its own and the connection's). */
  creditFor(streamId: number): number {
    return Math.min(this.connectionCredit, this.streamCredit.get(streamId) ?? this.initialStreamCredit);
  }

  spend(streamId: number, n: number): void {
    this.connectionCredit -= n;
    this.streamCredit.set(streamId, (this.streamCredit.get(streamId) ?? this.initialStreamCredit) - n);
  }

  forget(streamId: number): void {
    this.streamCredit.delete(streamId);
  }

  /** Resolves at the next CREDIT or HELLO read, when the connection goes, or at `until`. */
  creditChanged(until: number): Promise<void> {
    return this.event(until);
  }

  /** Reads (resuming a paused socket) until a GOAWAY or the end of the connection, for at most `ms`. */
  async readFor(ms: number): Promise<void> {
    this.socket.resume();
    const until = performance.now() + ms;
    while (this.goaway === undefined && !this.gone && performance.now() < until) await this.event(until);
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Resolves at the next wake-up (a frame we act on, 'drain', the end of the connection) or at `until`. */
  private event(until: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(wake, Math.max(0, until - performance.now()));
      const waiters = this.waiters;
      function wake(): void {
        clearTimeout(timer);
        waiters.delete(wake);
        resolve();
      }
      waiters.add(wake);
    });
  }

  private wakeAll(): void {
    for (const wake of [...this.waiters]) wake();
  }

  private noteClosed(): void {
    this.closedAtMs ??= performance.now() - this.openedAt;
    this.wakeAll();
  }

  /** A streaming frame parser that keeps only the payloads it reads (HELLO, CREDIT, GOAWAY) and skips the rest. */
  private parse(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.left === 0 && this.keep === null) {
        const n = Math.min(HEADER_BYTES - this.headerFill, chunk.length - at);
        chunk.copy(this.header, this.headerFill, at, at + n);
        this.headerFill += n;
        at += n;
        if (this.headerFill < HEADER_BYTES) return;
        this.headerFill = 0;
        this.type = this.header[0]!;
        this.streamId = this.header.readUInt32BE(2);
        this.left = this.header.readUInt32BE(6);
        const wanted = this.type === FrameType.HELLO || this.type === FrameType.CREDIT || this.type === FrameType.GOAWAY;
        this.keep = wanted ? [] : null;
        if (this.left > 0) continue;
      } else {
        const n = Math.min(this.left, chunk.length - at);
        this.keep?.push(chunk.subarray(at, at + n));
        this.left -= n;
        at += n;
        if (this.left > 0) return;
      }
      this.framesRead++;
      if (this.keep !== null) this.handle(Buffer.concat(this.keep));
      this.keep = null;
    }
  }

  private handle(payload: Buffer): void {
    if (this.type === FrameType.GOAWAY && payload.length >= 10) {
      const length = payload.readUInt16BE(8);
      this.goaway ??= {
        code: codeName(payload.readUInt32BE(4)),
        message: payload.subarray(10, 10 + length).toString('utf8'),
        atMs: performance.now() - this.openedAt,
      };
    } else if (this.type === FrameType.CREDIT && payload.length === 4) {
      const n = payload.readUInt32BE(0);
      if ((this.header[1]! & Flag.MESSAGES) !== 0) return; // message credit: the attacks stay within 1 024 messages
      if (this.streamId === 0) this.connectionCredit = Math.min(MAX_WINDOW, this.connectionCredit + n);
      else this.streamCredit.set(this.streamId, (this.streamCredit.get(this.streamId) ?? this.initialStreamCredit) + n);
    } else if (this.type === FrameType.HELLO) {
      this.readHello(payload);
    }
    this.wakeAll();
  }

  /** The server's HELLO settings we act on: its frame limit and the windows it grants us. */
  private readHello(payload: Buffer): void {
    this.helloRead = true;
    // absent settings take the protocol's conservative values (docs/PROTOCOL.md)
    this.initialStreamCredit = 64 * 1024;
    this.connectionCredit = 1024 * 1024;
    let at = 13;
    for (let i = 0; i < (payload[12] ?? 0) && at + 4 <= payload.length; i++) {
      const id = payload.readUInt16BE(at);
      const length = payload.readUInt16BE(at + 2);
      const value = length === 4 ? payload.readUInt32BE(at + 4) : 0;
      if (id === 0x01) this.serverMaxFrameBytes = value;
      if (id === 0x02) this.initialStreamCredit = value;
      if (id === 0x03) this.connectionCredit = value;
      at += 4 + length;
    }
  }
}
