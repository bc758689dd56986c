/**
 * Where a receiver puts verified chunks: a directory (FileStore: `<name>.part` plus `<name>.part.state`, the chunk
 * size and one `sha256 length` line per verified chunk; renamed to `<name>` once the whole sha256 matched) or a
 * stream such as stdout (StreamSink: written only once verified, so a pipe never sees bytes that are taken back).
 * A sink knows nothing of calls: receive.ts and service.ts hand it chunks they have verified.
 *
 * A FileSink opened on a name with state on disk re-reads the `.part` and keeps only the prefix whose chunks still
 * hash to what the state says (a crash may have left the state ahead of the data, or the data changed): it never
 * claims bytes it has not verified itself.
 */
import { createHash, type Hash } from 'node:crypto';
import { open, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { RpcError } from '../../rpc/rpc-error.js';
import { Status } from '../../wire/constants.js';
import { PART_SUFFIX, STATE_SUFFIX, STATE_TMP_SUFFIX } from './protocol.js';

export interface Verdict {
  /** The receiver's whole sha256 equals the sender's (and a file sink renamed the file into place). */
  ok: boolean;
  sha256: string;
  size: number;
}

/** Verified chunks, in order. */
export interface ChunkSink {
  readonly chunkSize: number;
  /** sha256 (hex) of each verified chunk. */
  readonly hashes: readonly string[];
  readonly verifiedBytes: number;
  /** True when a chunk's bytes stay referenced after append() (a stream's queue): the caller must not reuse them. */
  readonly keepsChunks: boolean;
  /** Keeps only the first `chunks` verified chunks (a resume that found a later one differs). */
  truncate(chunks: number): Promise<void>;
  /** Adds the next chunk, already verified against the sender's `sha256`. */
  append(index: number, bytes: Uint8Array, sha256: string): Promise<void>;
  /** Compares the whole sha256 with the sender's: equal puts the file in place; different discards it. */
  finish(size: number, sha256: string): Promise<Verdict>;
  /** Lets go of files (the partial state stays on disk for a later resume). */
  close(): Promise<void>;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

const STATE_HEADER = 'gridwire.transfer.v1 chunkSize=';

/** A directory receiving files by name. */
export class FileStore {
  constructor(readonly dir: string) {}

  partPath(name: string): string {
    return join(this.dir, name + PART_SUFFIX);
  }

  statePath(name: string): string {
    return join(this.dir, name + STATE_SUFFIX);
  }

  filePath(name: string): string {
    return join(this.dir, name);
  }

  /** Opens `name` for receiving in chunks of `chunkSize`, keeping the verified prefix found on disk (see the header). */
  async open(name: string, chunkSize: number): Promise<FileSink> {
    const recorded = await this.readState(name, chunkSize);
    const part = await open(this.partPath(name), 'a+').then(async (handle) => {
      await handle.close();
      return open(this.partPath(name), 'r+');
    });
    try {
      const { hashes, lengths, whole } = await reverify(part, recorded, chunkSize);
      const sink = new FileSink(this, name, chunkSize, part, hashes, lengths, whole);
      await sink.rewriteState();
      await part.truncate(sink.verifiedBytes);
      return sink;
    } catch (error) {
      await part.close();
      throw error;
    }
  }

  private async readState(name: string, chunkSize: number): Promise<{ sha256: string; length: number }[]> {
    let text: string;
    try {
      text = await readFile(this.statePath(name), 'utf8');
    } catch {
      return [];
    }
    const lines = text.split('\n');
    if (lines[0] !== `${STATE_HEADER}${chunkSize}`) return [];   // another chunk size or not ours: start over
    const chunks: { sha256: string; length: number }[] = [];
    for (const line of lines.slice(1)) {
      const match = /^([0-9a-f]{64}) (\d+)$/.exec(line);
      if (match === null) break;   // a torn last line
      chunks.push({ sha256: match[1]!, length: Number(match[2]) });
    }
    return chunks;
  }
}

/** Reads the `.part` chunk by chunk and keeps the prefix whose hashes match `recorded`; hashes the whole along. */
async function reverify(part: FileHandle, recorded: { sha256: string; length: number }[], chunkSize: number): Promise<{ hashes: string[]; lengths: number[]; whole: Hash }> {
  const whole = createHash('sha256');
  const hashes: string[] = [];
  const lengths: number[] = [];
  if (recorded.length === 0) return { hashes, lengths, whole };
  const buffer = Buffer.allocUnsafe(chunkSize);
  for (const chunk of recorded) {
    if (chunk.length > chunkSize || chunk.length === 0) break;
    if (lengths.length > 0 && lengths[lengths.length - 1] !== chunkSize) break;   // only the last chunk may be short
    const { bytesRead } = await part.read(buffer, 0, chunk.length, hashes.length * chunkSize);
    if (bytesRead !== chunk.length) break;
    const bytes = buffer.subarray(0, bytesRead);
    if (sha256Hex(bytes) !== chunk.sha256) break;
    whole.update(bytes);
    hashes.push(chunk.sha256);
    lengths.push(chunk.length);
  }
  return { hashes, lengths, whole };
}

/** One name being received into a FileStore. */
export class FileSink implements ChunkSink {
  readonly keepsChunks = false;
  private bytes: number;
  private state: FileHandle | undefined;
  private closed = false;

  constructor(
    private readonly store: FileStore,
    readonly name: string,
    readonly chunkSize: number,
    private readonly part: FileHandle,
    readonly hashes: string[],
    private readonly lengths: number[],
    /** sha256 of the verified prefix, or undefined after a truncate (finish then re-reads the file). */
    private whole: Hash | undefined,
  ) {
    this.bytes = lengths.reduce((sum, length) => sum + length, 0);
  }

  get verifiedBytes(): number {
    return this.bytes;
  }

  /** Writes the state file anew (atomically: a temporary file renamed over it) and reopens it for appending. */
  async rewriteState(): Promise<void> {
    await this.state?.close();
    this.state = undefined;
    const lines = [`${STATE_HEADER}${this.chunkSize}`, ...this.hashes.map((sha, i) => `${sha} ${this.lengths[i]}`)];
    const path = this.store.statePath(this.name);
    const temporary = join(this.store.dir, this.name + STATE_TMP_SUFFIX);
    await writeFile(temporary, `${lines.join('\n')}\n`);
    await rename(temporary, path);
    this.state = await open(path, 'a');
  }

  async truncate(chunks: number): Promise<void> {
    if (chunks >= this.hashes.length) return;
    this.hashes.length = chunks;
    this.lengths.length = chunks;
    this.bytes = chunks * this.chunkSize;
    this.whole = chunks === 0 ? createHash('sha256') : undefined;
    await this.part.truncate(this.bytes);
    await this.rewriteState();
  }

  async append(index: number, bytes: Uint8Array, sha256: string): Promise<void> {
    if (index !== this.hashes.length) throw new RpcError(Status.INTERNAL, `chunk ${index} appended after ${this.hashes.length} verified chunks`);
    if (this.lengths.length > 0 && this.lengths[this.lengths.length - 1] !== this.chunkSize) {
      throw new RpcError(Status.OUT_OF_RANGE, `chunk ${index} follows a short (last) chunk`);
    }
    let written = 0;
    while (written < bytes.length) {
      const { bytesWritten } = await this.part.write(bytes, written, bytes.length - written, this.bytes + written);
      written += bytesWritten;
    }
    // the state line goes after the data: a crash between leaves data the state does not claim, never the reverse
    // (and open() re-hashes what the state claims anyway)
    await this.state!.write(`${sha256} ${bytes.length}\n`);
    this.hashes.push(sha256);
    this.lengths.push(bytes.length);
    this.bytes += bytes.length;
    this.whole?.update(bytes);
  }

  async finish(size: number, sha256: string): Promise<Verdict> {
    if (size !== this.bytes) {
      throw new RpcError(Status.FAILED_PRECONDITION, `finish at ${size} bytes, but ${this.bytes} bytes are verified`);
    }
    const mine = this.whole !== undefined ? this.whole.copy().digest('hex') : await this.hashPart();
    await this.close();
    if (mine === sha256) {
      await rename(this.store.partPath(this.name), this.store.filePath(this.name));
    } else {
      await rm(this.store.partPath(this.name), { force: true });
    }
    await rm(this.store.statePath(this.name), { force: true });
    return { ok: mine === sha256, sha256: mine, size: this.bytes };
  }

  private async hashPart(): Promise<string> {
    const whole = createHash('sha256');
    const buffer = Buffer.allocUnsafe(1024 * 1024);
    for (let at = 0; at < this.bytes;) {
      const { bytesRead } = await this.part.read(buffer, 0, Math.min(buffer.length, this.bytes - at), at);
      if (bytesRead === 0) break;
      whole.update(buffer.subarray(0, bytesRead));
      at += bytesRead;
    }
    return whole.digest('hex');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.state?.close();
    await this.part.close();
  }

  /** Closes, and removes the `.part` and its state when they hold nothing (a transfer that never got a chunk). */
  async closeOrDiscard(): Promise<void> {
    await this.close();
    if (this.hashes.length > 0) return;
    await rm(this.store.partPath(this.name), { force: true });
    await rm(this.store.statePath(this.name), { force: true });
  }
}

/**
 * A stream (stdout) receiving verified chunks in order. It cannot take bytes back: a truncate below what it wrote
 * fails (a resume after a cut starts exactly at its verified offset, so it never needs to).
 */
export class StreamSink implements ChunkSink {
  readonly keepsChunks = true;
  readonly hashes: string[] = [];
  private bytes = 0;
  private readonly whole = createHash('sha256');

  constructor(
    private readonly out: Writable,
    readonly chunkSize: number,
  ) {}

  get verifiedBytes(): number {
    return this.bytes;
  }

  truncate(chunks: number): Promise<void> {
    if (chunks >= this.hashes.length) return Promise.resolve();
    return Promise.reject(new RpcError(Status.DATA_LOSS, `the sender's chunk ${chunks} is not the one already written to the output; a stream cannot take it back`));
  }

  async append(index: number, bytes: Uint8Array, sha256: string): Promise<void> {
    if (index !== this.hashes.length) throw new RpcError(Status.INTERNAL, `chunk ${index} appended after ${this.hashes.length} verified chunks`);
    this.whole.update(bytes);
    this.hashes.push(sha256);
    this.bytes += bytes.length;
    if (!this.out.write(bytes)) await waitDrain(this.out);
  }

  finish(size: number, sha256: string): Promise<Verdict> {
    const mine = this.whole.copy().digest('hex');
    return Promise.resolve({ ok: size === this.bytes && mine === sha256, sha256: mine, size: this.bytes });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function waitDrain(out: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error): void => {
      out.off('drain', onDrain);
      out.off('error', done);
      out.off('close', onClose);
      if (error) reject(error);
      else resolve();
    };
    const onDrain = (): void => done();
    const onClose = (): void => done(new Error('the output was closed'));
    out.on('drain', onDrain);
    out.on('error', done);
    out.on('close', onClose);
  });
}
