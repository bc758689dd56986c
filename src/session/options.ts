/**
 * Session options: names carry their units, defaults live here, and everything is checked once, in
 * resolveSessionOptions, so the rest of the session can trust its numbers.
 */
import {
  DEFAULT_LIMITS,
  MAX_MAX_FRAME_BYTES,
  MAX_WINDOW,
  MIN_MAX_FRAME_BYTES,
} from '../wire/constants.js';
import type { SessionPeer } from './handshake.js';
import { defaultMaxResets } from './peer-guard.js';
import { reassemblyChargeOf } from './reassembly.js';
import { defaultMemoryBudget, MemoryBudget } from './memory-budget.js';
import { MAX_TIMER_MS } from '../timers.js';

export interface SessionOptions {
  /** Largest frame payload we accept. Default 65 536; 16 384 - 16 777 216. */
  maxFrameBytes?: number;
  /**
   * Largest message we accept (larger ones fail that stream with RESOURCE_EXHAUSTED); announced in HELLO, and senders
   * check it before sending. Default 4 MiB. For larger messages raise it on both sides: the reassembly budget
   * (maxReassemblyBytes) follows it.
   */
  maxMessageBytes?: number;
  /** Request/trailer metadata we accept, counting keys + values + 32 bytes per entry. Default 8 192. */
  maxMetadataBytes?: number;
  /** Metadata entries we accept per block. Default 64, at most 255. */
  maxMetadataEntries?: number;
  /** Receive window granted to each new stream. Default 262 144. */
  initialStreamWindow?: number;
  /** Messages the peer may send on a stream before we grant more (consumption-based). Default 1 024. */
  initialMessageWindow?: number;
  /**
   * Receive window a bulk body (an upload's handler, a download's caller) starts with. Default 256 KiB: on a local
   * link the bytes in flight ahead of a small call's reply stay few; the window grows from there as the connection
   * needs (maxBulkWindow).
   */
  bulkWindow?: number;
  /**
   * How far the receiver may grow one bulk body's window while the transfer shows that the window limits it (a window
   * consumed in under three credit loops while the reader waits for data; a long fat link), within the larger of
   * connectionWindow and maxBulkWindow of growth per connection and the memoryBudget (session/window-tuner.ts); the
   * connection window grows with it. Default 32 MiB, or bulkWindow when that is larger; bulkWindow (or less) turns the
   * growth off.
   */
  maxBulkWindow?: number;
  /** Receive window granted to the whole connection. Default 16 MiB. */
  connectionWindow?: number;
  /** Streams the peer may have open towards us at once; more are refused (retry-safe). Default 100. */
  maxConcurrentStreams?: number;
  /**
   * Bytes of partly received messages held across all streams of the connection; past it the stream whose message
   * grows fails with RESOURCE_EXHAUSTED. Default: twice what holding a message of maxMessageBytes costs (its bytes,
   * a block's unused end, 128 bytes a block), at least 32 MiB (so two messages of the largest size can arrive at once,
   * while what one connection can make us hold stays bounded).
   */
  maxReassemblyBytes?: number;
  /**
   * Bytes queued to send on the streams of the connection while the peer's credit holds them back (a response that
   * cannot be sent yet, a message waiting behind others); past it the stream that would queue more fails with
   * RESOURCE_EXHAUSTED. A unary response cannot wait for room: it fails. Default: twice maxMessageBytes, at least 32 MiB.
   */
  maxQueuedSendBytes?: number;
  /**
   * The process-wide budget that every connection's partly received messages and queued sends also reserve from, so
   * that many connections cannot each fill their own budgets at once. Default: one budget per process, a quarter of the
   * V8 heap limit. A MemoryBudget is shared by every session given it; a number is the one budget of that many bytes
   * that every session given the same number shares.
   */
  memoryBudget?: MemoryBudget | number;
  /**
   * Frames we may queue while the transport asks us to wait (the peer is not reading) before the connection closes
   * with GOAWAY ENHANCE_YOUR_CALM: control frames, resets and ends the peer's frames provoke. Default 1 000.
   */
  maxBlockedWriteFrames?: number;
  /** As maxBlockedWriteFrames, in bytes (headers and payloads). Default 4 MiB. */
  maxBlockedWriteBytes?: number;
  /**
   * The transport has asked us to wait and made no progress at all (nothing taken by the OS) for this long: the peer
   * reads nothing, and the connection closes (GW_ERR_WRITE_STALL). Default 60 000; 0 disables.
   */
  writeStallTimeoutMs?: number;
  /**
   * Time for the connection's whole handshake: the peer's HELLO, the acceptor's admission of the dialer (an async
   * `auth.verify` or `admit`), and a transport's own handshake where it has one. Default 10 000 ms; 0 disables.
   */
  handshakeTimeoutMs?: number;
  /**
   * When nothing has been read for this long, send a PING; 0 disables keepalive. Default 30 000. A dead peer is
   * detected between interval + timeout and 2 x interval + timeout after the last byte read.
   */
  keepaliveIntervalMs?: number;
  /** How long a keepalive PING may go without any byte arriving before the connection is declared dead. Default 20 000. */
  keepaliveTimeoutMs?: number;
  /**
   * Pings from the peer are allowed at one per this interval on average (bursts of 16); each one beyond is a strike,
   * and the third strike closes the connection with GOAWAY ENHANCE_YOUR_CALM. Default 1 000; 0 allows any rate.
   */
  peerPingIntervalMs?: number;
  /**
   * A bulk transfer (upload, download) whose bytes have not moved for this long while waiting on the peer fails with
   * DEADLINE_EXCEEDED on both sides: the peer is alive but the transfer is stuck. Default 60 000; 0 disables.
   */
  progressTimeoutMs?: number;
  /** Our node name, sent in HELLO. Default ''. */
  nodeName?: string;
  /** Connection label, sent in HELLO (e.g. 'control', 'data'). Default ''. */
  label?: string;
  /**
   * Stream resets the peer causes per 30 s: its RESETs of calls whose handlers still run while maxConcurrentStreams
   * handlers it cancelled earlier are still running too (Rapid Reset; cancels within that many are not counted, so an
   * honest peer is never cut unless our handlers ignore their AbortSignal), plus the RESETs we send because of what
   * it sent on a stream (MadeYouReset: a message over maxMessageBytes, malformed OPEN or END, END in the middle of a
   * message...). One more closes the connection with GOAWAY ENHANCE_YOUR_CALM. Default 200, or twice
   * maxConcurrentStreams when that is more; 0 allows any number.
   */
  maxResetsPer30s?: number;
  /**
   * Bytes the connection hands to the session per event-loop turn before it yields, so that one busy connection (a
   * bulk transfer, a flooder) cannot hold the event loop while the process's other connections wait (a Mesh sets
   * 64 KiB on its `data` lane). A function decides per connection once the peer's HELLO is read (a listener learns
   * only then which peer and lane dialed it). Applies from the end of the handshake, on transports that support it
   * (TCP, Unix). Default 262 144 (256 KiB, four of libuv's 64 KiB reads); 0: no limit.
   */
  readBudgetBytes?: number | ((peer: SessionPeer) => number);
  // ---- time limits (session/lifetime.ts)
  /**
   * A frame that has started arriving must complete within this long, or the connection closes with
   * GW_ERR_FRAME_TIMEOUT (a peer holding half a frame). Caught within 1.25 x the limit. Default 30 000; 0 disables.
   */
  frameTimeoutMs?: number;
  /**
   * The accepting side closes a connection that has had no stream open for this long, gracefully (GOAWAY NO_ERROR
   * "idle"); channels and mesh peers redial at once. Caught within 1.25 x the limit. Default 0: never.
   */
  maxConnectionIdleMs?: number;
  /**
   * The accepting side closes a connection this old (+- 10 % jitter) gracefully (GOAWAY NO_ERROR "max connection
   * age"), so clients reconnect (to other servers behind a balancer); channels and mesh peers redial at once.
   * Default 0: never.
   */
  maxConnectionAgeMs?: number;
  /** After a max-age GOAWAY, how long calls in flight may take before they fail UNAVAILABLE. Default 10 000; Infinity waits for them. */
  maxConnectionAgeGraceMs?: number;
}

export type ResolvedSessionOptions = Required<SessionOptions>;

/**
 * The read budget of a connection unless set (readBudgetBytes). libuv reads a ready socket up to 32 x 64 KiB per turn;
 * four reads bound what one connection's frames can hold the loop for, and a bulk connection yields once per 256 KiB,
 * rarely enough that its throughput does not notice.
 */
export const DEFAULT_READ_BUDGET_BYTES = 256 * 1024;
/** Defaults of the limits on what a peer can make us hold or queue (connection-memory.ts, outbox.ts). */
const MEMORY_DEFAULTS = {
  maxBlockedWriteFrames: 1_000,
  maxBlockedWriteBytes: 4 * 1024 * 1024,
  writeStallTimeoutMs: 60_000,
};

const LIFECYCLE_DEFAULTS = {
  keepaliveIntervalMs: 30_000,
  keepaliveTimeoutMs: 20_000,
  peerPingIntervalMs: 1_000,
  progressTimeoutMs: 60_000,
  nodeName: '',
  label: '',
  readBudgetBytes: DEFAULT_READ_BUDGET_BYTES,
  frameTimeoutMs: 30_000,
  maxConnectionIdleMs: 0,
  maxConnectionAgeMs: 0,
  maxConnectionAgeGraceMs: 10_000,
};

function integer(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${value}`);
  }
  return value;
}

export function resolveSessionOptions(options: SessionOptions = {}): ResolvedSessionOptions {
  const o = { ...DEFAULT_LIMITS, ...LIFECYCLE_DEFAULTS, ...MEMORY_DEFAULTS, ...stripUndefined(options) };
  const maxMessageBytes = integer('maxMessageBytes', o.maxMessageBytes, 0, 0xffff_ffff);
  const maxConcurrentStreams = integer('maxConcurrentStreams', o.maxConcurrentStreams, 1, 0xffff_ffff);
  const bulkWindow = integer('bulkWindow', o.bulkWindow, MIN_MAX_FRAME_BYTES, MAX_WINDOW);
  return {
    maxFrameBytes: integer('maxFrameBytes', o.maxFrameBytes, MIN_MAX_FRAME_BYTES, MAX_MAX_FRAME_BYTES),
    maxMessageBytes,
    maxMetadataBytes: integer('maxMetadataBytes', o.maxMetadataBytes, 0, 1024 * 1024),
    maxMetadataEntries: integer('maxMetadataEntries', o.maxMetadataEntries, 0, 255),
    initialStreamWindow: integer('initialStreamWindow', o.initialStreamWindow, MIN_MAX_FRAME_BYTES, MAX_WINDOW),
    initialMessageWindow: integer('initialMessageWindow', o.initialMessageWindow, 1, MAX_WINDOW),
    bulkWindow,
    maxBulkWindow: integer('maxBulkWindow', options.maxBulkWindow ?? Math.max(DEFAULT_LIMITS.maxBulkWindow, bulkWindow), MIN_MAX_FRAME_BYTES, MAX_WINDOW),
    connectionWindow: integer('connectionWindow', o.connectionWindow, MIN_MAX_FRAME_BYTES, MAX_WINDOW),
    maxConcurrentStreams,
    maxReassemblyBytes: integer(
      'maxReassemblyBytes',
      // two messages of the largest size, with what holding them costs beyond their bytes (reassembly.ts)
      options.maxReassemblyBytes ?? Math.max(DEFAULT_LIMITS.maxReassemblyBytes, 2 * reassemblyChargeOf(maxMessageBytes)),
      0,
      Number.MAX_SAFE_INTEGER,
    ),
    maxQueuedSendBytes: integer(
      'maxQueuedSendBytes',
      options.maxQueuedSendBytes ?? Math.max(DEFAULT_LIMITS.maxReassemblyBytes, 2 * maxMessageBytes),
      0,
      Number.MAX_SAFE_INTEGER,
    ),
    memoryBudget: memoryBudget(options.memoryBudget),
    maxBlockedWriteFrames: integer('maxBlockedWriteFrames', o.maxBlockedWriteFrames, 1, 0xffff_ffff),
    maxBlockedWriteBytes: integer('maxBlockedWriteBytes', o.maxBlockedWriteBytes, 64 * 1024, Number.MAX_SAFE_INTEGER),
    writeStallTimeoutMs: integer('writeStallTimeoutMs', o.writeStallTimeoutMs, 0, MAX_TIMER_MS),
    handshakeTimeoutMs: integer('handshakeTimeoutMs', o.handshakeTimeoutMs, 0, MAX_TIMER_MS),
    keepaliveIntervalMs: integer('keepaliveIntervalMs', o.keepaliveIntervalMs, 0, MAX_TIMER_MS),
    keepaliveTimeoutMs: integer('keepaliveTimeoutMs', o.keepaliveTimeoutMs, 1, MAX_TIMER_MS),
    peerPingIntervalMs: integer('peerPingIntervalMs', o.peerPingIntervalMs, 0, MAX_TIMER_MS),
    progressTimeoutMs: integer('progressTimeoutMs', o.progressTimeoutMs, 0, MAX_TIMER_MS),
    nodeName: text('nodeName', o.nodeName),
    label: text('label', o.label),
    maxResetsPer30s: integer('maxResetsPer30s', options.maxResetsPer30s ?? defaultMaxResets(maxConcurrentStreams), 0, Number.MAX_SAFE_INTEGER),
    readBudgetBytes: typeof o.readBudgetBytes === 'function' ? o.readBudgetBytes : readBudget(o.readBudgetBytes),
    frameTimeoutMs: integer('frameTimeoutMs', o.frameTimeoutMs, 0, MAX_TIMER_MS),
    maxConnectionIdleMs: integer('maxConnectionIdleMs', o.maxConnectionIdleMs, 0, MAX_TIMER_MS),
    maxConnectionAgeMs: integer('maxConnectionAgeMs', o.maxConnectionAgeMs, 0, MAX_TIMER_MS),
    maxConnectionAgeGraceMs:
      o.maxConnectionAgeGraceMs === Infinity ? Infinity : integer('maxConnectionAgeGraceMs (or Infinity)', o.maxConnectionAgeGraceMs, 0, MAX_TIMER_MS),
  };
}

/** The read budget of a connection to `peer` (0: none); a function option is asked, and its answer checked, here. */
export function readBudgetFor(options: ResolvedSessionOptions, peer: SessionPeer): number {
  const budget = options.readBudgetBytes;
  return typeof budget === 'function' ? readBudget(budget(peer)) : budget;
}

function readBudget(value: number): number {
  return integer('readBudgetBytes', value, 0, Number.MAX_SAFE_INTEGER);
}

/** The process's budget (undefined), a MemoryBudget as given, or a number of bytes (memoryBudgetOf shares it). */
function memoryBudget(value: MemoryBudget | number | undefined): MemoryBudget | number {
  if (value === undefined) return defaultMemoryBudget();
  if (value instanceof MemoryBudget) return value;
  return integer('memoryBudget', value, 0, Number.MAX_SAFE_INTEGER);
}

/** HELLO carries names of at most 255 UTF-8 bytes; say so here rather than when the first connection arrives. */
function text(name: string, value: string): string {
  if (typeof value !== 'string' || Buffer.byteLength(value) > 255) {
    throw new RangeError(`${name} must be a string of at most 255 UTF-8 bytes`);
  }
  return value;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
