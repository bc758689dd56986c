/**
 * The sending side of a transfer (`gridwire send`, the demo's replication): reads a source in chunks, hashes each,
 * sends the bytes as one upload body per attempt and each chunk's hash as a commit, and keeps the chunks not yet
 * acknowledged (at most `windowChunks`) in memory so a resume never needs to read a stream again. After a cut it asks
 * the receiver what it holds (status), compares the receiver's hashes with its own (hashing its own prefix when it
 * has not read it yet), and sends again from the first chunk that is missing or differs.
 *
 * Counts honestly: `verified` is what the receiver acknowledged; `resentBytes` every byte put in a body at an offset
 * an earlier body had already reached.
 */
import { createHash, randomUUID } from 'node:crypto';
import { RpcError } from '../../rpc/rpc-error.js';
import { Status } from '../../wire/constants.js';
import type { Client } from '../../rpc/client/typed-client.js';
import { DEFAULT_CHUNK_BYTES, DEFAULT_WINDOW_CHUNKS, checkChunkSize, checkName, type TransferMethods } from './protocol.js';
import { clientOf, retrying, type RetryOptions, type TransferClient } from './retry.js';
import { BufferPool, chunksOf, type TransferSource } from './source.js';
import { sha256Hex } from './sink.js';

export interface TransferProgress {
  /** Bytes the receiver verified. */
  verified: number;
  /** The whole size, when known. */
  total: number | undefined;
}

export interface TransferSummary {
  name: string;
  /** True when the receiver's whole sha256 equalled the sender's. */
  ok: boolean;
  bytes: number;
  sha256: string;
  /** The other side's whole sha256 (equal to sha256 when ok). */
  peerSha256: string;
  seconds: number;
  mibPerSecond: number;
  /** Attempts that failed and were resumed. */
  cuts: number;
  /** Bytes sent (or received) more than once. */
  resentBytes: number;
  /** Where the first attempt started (a receiver already holding a verified prefix). */
  resumedFrom: number;
}

export interface SendOptions extends RetryOptions {
  client: TransferClient;
  source: TransferSource;
  name: string;
  /** Default 4 MiB. */
  chunkSize?: number;
  /** Chunks sent and not yet acknowledged, at most (default 4). */
  windowChunks?: number;
  onProgress?: (progress: TransferProgress) => void;
}

/** Sends `source` as `name`; resolves with the summary (check `ok`), rejects when it could not finish. */
export async function sendTransfer(options: SendOptions): Promise<TransferSummary> {
  checkName(options.name);
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_BYTES;
  checkChunkSize(chunkSize);
  const sender = new ChunkSender(options, chunkSize, options.windowChunks ?? DEFAULT_WINDOW_CHUNKS);
  const started = performance.now();
  try {
    const { value, cuts } = await retrying((n) => sender.attempt(n), () => sender.verifiedBytes, options);
    const seconds = (performance.now() - started) / 1000;
    return {
      name: options.name,
      ok: value.ok,
      bytes: sender.totalBytes,
      sha256: sender.sha256,
      peerSha256: value.sha256,
      seconds,
      mibPerSecond: (sender.totalBytes - sender.resumedFrom) / 2 ** 20 / Math.max(seconds, 1e-6),
      cuts,
      resentBytes: sender.resentBytes,
      resumedFrom: sender.resumedFrom,
    };
  } finally {
    sender.release();
  }
}

/** A sender with a full window waits this long for an acknowledgement before it treats the silence as a cut. */
const ACK_TIMEOUT_MS = 60_000;

class ChunkSender {
  readonly transferId = randomUUID();
  /** sha256 of every chunk read so far, by index. */
  private readonly hashes: string[] = [];
  private readonly lengths: number[] = [];
  /** Unacknowledged chunks' bytes by index (plus, briefly, the one being compared at a resume). */
  private readonly window = new Map<number, Buffer>();
  /** Chunks acknowledged ahead of the first unacknowledged one. */
  private readonly acknowledged = new Set<number>();
  private ackedChunks = 0;
  private ackedBytes = 0;
  /** The source's chunks from `nextIndex` on; reopened (seekable sources only) to read an earlier chunk again. */
  private reader: AsyncIterator<Buffer> | undefined;
  private nextIndex = 0;
  private ended = false;
  private readonly whole = createHash('sha256');
  private digest: string | undefined;
  /** The furthest offset any body reached. */
  private sentHigh = 0;
  resentBytes = 0;
  resumedFrom = -1;
  private roomWaiter: (() => void) | undefined;
  /** The source read under way (chunk() calls run one after another). */
  private reading: Promise<void> = Promise.resolve();
  /** Chunk buffers, given back once acknowledged (or skipped unsent). */
  private readonly pool: BufferPool;

  constructor(
    private readonly options: SendOptions,
    private readonly chunkSize: number,
    private readonly windowChunks: number,
  ) {
    this.pool = new BufferPool(chunkSize, windowChunks + 2);
  }

  get verifiedBytes(): number {
    return this.ackedBytes;
  }

  get totalBytes(): number {
    return this.lengths.reduce((sum, length) => sum + length, 0);
  }

  get sha256(): string {
    return this.digest ?? '';
  }

  release(): void {
    void this.reader?.return?.();
    this.reader = undefined;
    this.window.clear();
  }

  /** One attempt: find where to start, send from there, finish. Throws on a cut (retry.ts decides what next). */
  async attempt(n: number): Promise<{ ok: boolean; sha256: string }> {
    const client = await clientOf(this.options.client);
    const start = await this.resumePoint(client);
    if (start < this.ackedChunks) this.rewind(start);
    if (this.resumedFrom < 0) this.resumedFrom = start * this.chunkSize;
    if (n > 0) this.options.onEvent?.({ type: 'resume', offset: start * this.chunkSize, attempt: n });
    this.report();
    const abort = new AbortController();
    const outer = this.options.signal;
    const onOuter = (): void => abort.abort(outer!.reason);
    outer?.addEventListener('abort', onOuter, { once: true });
    const commits: Promise<void>[] = [];
    try {
      const body = this.body(client, start, abort, commits);
      const request = { name: this.options.name, transferId: this.transferId, chunkSize: this.chunkSize, offset: start * this.chunkSize, size: this.options.source.size ?? null };
      await client.upload(request, body, { signal: abort.signal });
      await Promise.all(commits);
    } catch (error) {
      abort.abort(error);
      await Promise.allSettled(commits);
      throw abort.signal.reason === error ? error : firstOf(error, abort.signal.reason);
    } finally {
      outer?.removeEventListener('abort', onOuter);
    }
    const reply = await client.finish({ name: this.options.name, transferId: this.transferId, size: this.totalBytes, sha256: this.sha256 });
    return { ok: reply.ok && reply.sha256 === this.sha256, sha256: reply.sha256 };
  }

  /** The first chunk the receiver lacks or holds differently: pages through its hashes and compares with ours. */
  private async resumePoint(client: Client<TransferMethods>): Promise<number> {
    for (let from = 0; ;) {
      const page = await client.status({ name: this.options.name, transferId: this.transferId, chunkSize: this.chunkSize, from });
      for (const [i, theirs] of page.hashes.entries()) {
        const index = from + i;
        const ours = await this.hashOf(index);
        if (ours !== theirs) return index;
        if (index >= this.ackedChunks) this.ack(index);
      }
      from += page.hashes.length;
      if (page.hashes.length === 0 || from >= page.verifiedChunks) return Math.min(from, page.verifiedChunks);
    }
  }

  /** The receiver lost chunks it had acknowledged (another sender took the name over, its store was reset). */
  private rewind(start: number): void {
    this.ackedChunks = start;
    this.ackedBytes = this.lengths.slice(0, start).reduce((sum, length) => sum + length, 0);
    this.acknowledged.clear();
  }

  /** Our hash of chunk `index`, reading the source to it if needed; undefined past the end. */
  private async hashOf(index: number): Promise<string | undefined> {
    if (index < this.hashes.length) return this.hashes[index];
    const chunk = await this.chunk(index);
    return chunk === undefined ? undefined : this.hashes[index];
  }

  /**
   * Chunk `index`'s bytes: from the window, else from the source (read on, or reopened when seekable). One read at a
   * time: the body of a cut attempt may still be waiting for the source when the next attempt asks for the same chunk
   * (it then finds it in the window, instead of both reading on and each getting the other's chunk).
   */
  private chunk(index: number): Promise<Buffer | undefined> {
    const read = this.reading.then(() => this.chunkNow(index));
    this.reading = read.then(() => {}, () => {});
    return read;
  }

  private async chunkNow(index: number): Promise<Buffer | undefined> {
    const held = this.window.get(index);
    if (held !== undefined) return held;
    if (this.ended && index >= this.hashes.length) return undefined;
    if (this.reader === undefined || index < this.nextIndex) {
      if (this.reader !== undefined && !this.options.source.seekable) {
        throw new Error(`the receiver needs chunk ${index} again (it lost what it had acknowledged), which a stream source cannot give twice; send it again from its start`);
      }
      await this.reader?.return?.();
      this.reader = chunksOf(this.options.source.open(index * this.chunkSize), this.chunkSize, this.pool)[Symbol.asyncIterator]();
      this.nextIndex = index;
    }
    for (;;) {
      const next = await this.reader.next();
      if (next.done === true) {
        this.ended = true;
        if (this.nextIndex < this.hashes.length) throw new Error('the source is shorter than when it was first read: it changed during the transfer');
        this.digest ??= this.whole.digest('hex');
        return undefined;
      }
      const at = this.nextIndex++;
      if (at === this.hashes.length) {   // read for the first time
        this.hashes.push(sha256Hex(next.value));
        this.lengths.push(next.value.length);
        this.whole.update(next.value);
      }
      if (at === index) {
        if (index >= this.ackedChunks) this.window.set(index, next.value);
        return next.value;
      }
      this.pool.give(next.value);   // read past (hashed, never sent)
    }
  }

  private async *body(client: Client<TransferMethods>, start: number, abort: AbortController, commits: Promise<void>[]): AsyncGenerator<Uint8Array> {
    for (let index = start; ; index++) {
      while (index - this.ackedChunks >= this.windowChunks) await this.room(abort.signal);
      const bytes = await this.chunk(index);
      if (bytes === undefined) return;
      const offset = index * this.chunkSize;
      if (offset < this.sentHigh) this.resentBytes += Math.min(bytes.length, this.sentHigh - offset);
      this.sentHigh = Math.max(this.sentHigh, offset + bytes.length);
      const request = { name: this.options.name, transferId: this.transferId, index, sha256: this.hashes[index]! };
      commits.push(client.commit(request, { signal: abort.signal }).then(
        () => this.ack(index),
        (error: unknown) => { abort.abort(error); },
      ));
      yield bytes;
    }
  }

  /**
   * Resolves once an acknowledgement made room in the window; rejects when the attempt is aborted, or with
   * DEADLINE_EXCEEDED (resumable) when none came for ACK_TIMEOUT_MS: a receiver that stopped answering is a cut.
   */
  private room(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', aborted);
      };
      const aborted = (): void => {
        done();
        reject(signal.reason as Error);
      };
      const timer = setTimeout(() => {
        done();
        this.roomWaiter = undefined;
        reject(new RpcError(Status.DEADLINE_EXCEEDED, `no acknowledgement from the receiver for ${ACK_TIMEOUT_MS / 1000} s`));
      }, ACK_TIMEOUT_MS);
      signal.addEventListener('abort', aborted, { once: true });
      this.roomWaiter = () => {
        done();
        resolve();
      };
    });
  }

  /** The receiver verified chunk `index`: acknowledged chunks leave the window in order (commits may answer out of order). */
  private ack(index: number): void {
    if (index < this.ackedChunks) return;
    this.acknowledged.add(index);
    while (this.acknowledged.delete(this.ackedChunks)) {
      const bytes = this.window.get(this.ackedChunks);
      this.window.delete(this.ackedChunks);
      if (bytes !== undefined) this.pool.give(bytes);
      this.ackedBytes += this.lengths[this.ackedChunks]!;
      this.ackedChunks++;
    }
    const waiter = this.roomWaiter;
    this.roomWaiter = undefined;
    waiter?.();
    this.report();
  }

  private report(): void {
    this.options.onProgress?.({ verified: this.ackedBytes, total: this.options.source.size ?? (this.ended ? this.totalBytes : undefined) });
  }
}

/** The error that explains an attempt's failure: a commit's error (DATA_LOSS, ABORTED) rather than the CANCELLED it caused. */
function firstOf(thrown: unknown, reason: unknown): unknown {
  if (thrown instanceof RpcError && thrown.code === Status.CANCELLED && reason instanceof Error) return reason;
  return thrown;
}
