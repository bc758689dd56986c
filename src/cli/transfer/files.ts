/**
 * The serving side of downloads (`gridwire recv` against `gridwire serve`): a file's size, its bytes from an offset,
 * the hashes of its chunks (those a running download computed as it read them, or read again from disk to check a
 * receiver's local prefix) and its whole sha256 (known from a finished upload or a download that read it all, else
 * read from disk). Files are read only under their final name: a `.part` is never served.
 */
import { createHash } from 'node:crypto';
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { CallContext } from '../../rpc/handler.js';
import { RpcError } from '../../rpc/rpc-error.js';
import { Status } from '../../wire/constants.js';
import {
  MAX_HASHED_BYTES_PER_CALL, MAX_HASHES_PER_PAGE, checkChunkSize, checkCount, checkName, checkTransferId, quoted, type DownloadRequest, type HashesRequest,
} from './protocol.js';
import { peerSafeError } from './fs-errors.js';
import { sha256Hex, type FileStore } from './sink.js';

/** A download in progress (or just ended): the hashes of the chunks it sent, for the receiver's `hashes` calls. */
interface Sending {
  name: string;
  chunkSize: number;
  first: number;
  hashes: Map<number, string>;
  ended: boolean;
  waiters: Set<() => void>;
  /** The whole sha256, when this download read the file from its start to its end. */
  sha256: string | undefined;
  size: number;
}

const KEEP_ENDED_DOWNLOAD_MS = 60_000;
/** Finished uploads whose chunk hashes are kept to answer `hashes` without reading the file. */
const KEEP_CHUNK_HASHES_OF_UPLOADS = 16;
/** Reads of files to hash them (a `hashes` of a file on disk, a `digest`) running at once, server-wide; others queue. */
export const DISK_HASHING_CONCURRENCY = 2;
/** The buffer each of those reads in (a chunk is hashed in pieces of this size, whatever the chunk size). */
const DISK_HASH_READ_BYTES = 1024 * 1024;

/**
 * At most DISK_HASHING_CONCURRENCY disk hashings at once, each with one of as many shared read buffers: a flood of
 * `hashes` calls queues here instead of allocating a buffer and a disk read each.
 */
class DiskHashing {
  private readonly free: Buffer[] = [];
  private readonly queue: (() => void)[] = [];
  private running = 0;
  /** Read buffers allocated so far (at most DISK_HASHING_CONCURRENCY). */
  buffersAllocated = 0;

  async run<T>(work: (buffer: Buffer) => Promise<T>): Promise<T> {
    while (this.running >= DISK_HASHING_CONCURRENCY) await new Promise<void>((resolve) => this.queue.push(resolve));
    this.running++;
    let buffer = this.free.pop();
    if (buffer === undefined) {
      buffer = Buffer.allocUnsafe(DISK_HASH_READ_BYTES);
      this.buffersAllocated++;
    }
    try {
      return await work(buffer);
    } finally {
      this.free.push(buffer);
      this.running--;
      this.queue.shift()?.();
    }
  }
}

/** sha256 (hex) of `length` bytes of `file` at `position`, read through `buffer`, and the bytes there were (fewer at the end). */
async function hashRange(file: FileHandle, buffer: Buffer, position: number, length: number): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  while (bytes < length) {
    const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, length - bytes), position + bytes);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    bytes += bytesRead;
  }
  return { sha256: hash.digest('hex'), bytes };
}
const MAX_DOWNLOAD_RECORDS = 256;

export class FileServer {
  private readonly sending = new Map<string, Sending>();
  /** Whole sha256 (and, from a finished upload, the chunk hashes) of files, while their size and mtime stay so. */
  private readonly digests = new Map<string, { size: number; mtimeMs: number; sha256: string; chunkSize?: number; hashes?: readonly string[] }>();
  private readonly diskHashing = new DiskHashing();

  constructor(
    private readonly store: FileStore,
    private readonly log: (line: string) => void,
  ) {}

  /** A finished upload's whole sha256 and chunk hashes, so a download's digest and hashes need not read the file again. */
  async noteDigest(name: string, sha256: string, chunkSize?: number, hashes?: readonly string[]): Promise<void> {
    const info = await stat(this.store.filePath(name));
    this.digests.delete(name);   // to the end of the insertion order: the newest
    this.digests.set(name, { size: info.size, mtimeMs: info.mtimeMs, sha256, chunkSize, hashes });
    // chunk hashes are ~100 bytes per chunk: keep them for the newest few uploads only (the whole sha256 for all)
    let withHashes = 0;
    for (const record of [...this.digests.values()].reverse()) {
      if (record.hashes !== undefined && ++withHashes > KEEP_CHUNK_HASHES_OF_UPLOADS) record.hashes = undefined;
    }
  }

  /** Read buffers the disk hashing allocated so far (bounded by DISK_HASHING_CONCURRENCY; for tests). */
  get diskHashBuffersAllocated(): number {
    return this.diskHashing.buffersAllocated;
  }

  async statFile(name: string): Promise<{ size: number; mtimeMs: number }> {
    try {
      const info = await stat(this.store.filePath(name));
      if (!info.isFile()) throw new RpcError(Status.NOT_FOUND, `${name} is not a regular file here`);
      return info;
    } catch (error) {
      if (error instanceof RpcError) throw error;
      throw new RpcError(Status.NOT_FOUND, `no file ${name} here`);
    }
  }

  private async openFile(name: string): Promise<FileHandle> {
    await this.statFile(name);
    try {
      return await open(this.store.filePath(name), 'r');
    } catch (error) {
      throw peerSafeError(error, 'read', this.log, quoted(name));
    }
  }

  async download(request: DownloadRequest, ctx: CallContext): Promise<AsyncIterable<Uint8Array>> {
    checkName(request.name);
    checkTransferId(request.transferId);
    checkChunkSize(request.chunkSize);
    checkCount(request.offset, 'offset');
    const { name, chunkSize, offset } = request;
    if (offset % chunkSize !== 0) throw new RpcError(Status.INVALID_ARGUMENT, 'offset must be a multiple of chunkSize');
    const { size } = await this.statFile(name);
    if (offset > size) throw new RpcError(Status.OUT_OF_RANGE, `offset ${offset} is past the end of ${name} (${size} bytes)`);
    const sending: Sending = { name, chunkSize, first: offset / chunkSize, hashes: new Map(), ended: false, waiters: new Set(), sha256: undefined, size };
    this.remember(request.transferId, sending);
    const who = `${quoted(name)} to ${quoted(ctx.peer.nodeName || 'peer')}`;   // peer strings, quoted: one log line each
    this.log(offset === 0 ? `${who}: sending ${size} bytes` : `${who}: resumed at ${offset}`);
    const log = this.log;
    const openFile = (): Promise<FileHandle> => this.openFile(name);
    const forget = (): void => {
      setTimeout(() => {
        if (this.sending.get(request.transferId) === sending) this.sending.delete(request.transferId);
      }, KEEP_ENDED_DOWNLOAD_MS).unref();
    };
    // the file is opened by the generator's first step: a call cancelled before its body is pulled leaves nothing open
    return (async function* chunks() {
      const whole = offset === 0 ? createHash('sha256') : undefined;
      let at = offset;
      const file = await openFile();
      try {
        for (let index = offset / chunkSize; at < size; index++) {
          const bytes = Buffer.allocUnsafe(Math.min(chunkSize, size - at));
          const { bytesRead } = await readFully(file, bytes, at);
          if (bytesRead !== bytes.length) throw new RpcError(Status.DATA_LOSS, `${name} shrank while being sent`);
          sending.hashes.set(index, sha256Hex(bytes));
          whole?.update(bytes);
          for (const wake of sending.waiters) wake();
          at += bytes.length;
          yield bytes;
        }
        sending.sha256 = whole?.digest('hex');
        log(`${who}: sent through ${at}`);
      } catch (error) {
        log(`${who}: cut at ${at} (${(error as Error).message})`);
        throw peerSafeError(error, 'read', log, who);
      } finally {
        sending.ended = true;
        for (const wake of sending.waiters) wake();
        forget();
        await file.close();
      }
    })();
  }

  /** Keeps a download's record for the receiver's `hashes` and `digest` calls (a while after it ends: see `forget`). */
  private remember(transferId: string, sending: Sending): void {
    const previous = this.sending.get(transferId);
    if (previous !== undefined) for (const wake of previous.waiters) wake();
    this.sending.delete(transferId);
    this.sending.set(transferId, sending);
    if (this.sending.size > MAX_DOWNLOAD_RECORDS) {
      for (const [id, old] of this.sending) {
        if (old.ended) {
          this.sending.delete(id);
          break;
        }
      }
    }
  }

  async hashes(request: HashesRequest, ctx: CallContext): Promise<{ hashes: string[] }> {
    checkName(request.name);
    checkTransferId(request.transferId);
    checkChunkSize(request.chunkSize);
    checkCount(request.from, 'from');
    checkCount(request.count, 'count');
    if (request.count > MAX_HASHES_PER_PAGE) throw new RpcError(Status.INVALID_ARGUMENT, `count must be at most ${MAX_HASHES_PER_PAGE}`);
    const { name, chunkSize, from, count } = request;
    if (count * chunkSize > MAX_HASHED_BYTES_PER_CALL) {
      throw new RpcError(Status.INVALID_ARGUMENT, `count x chunkSize must be at most ${MAX_HASHED_BYTES_PER_CALL} bytes (page with a smaller count)`);
    }
    const sending = this.sending.get(request.transferId);
    if (sending !== undefined && sending.name === name && sending.chunkSize === chunkSize && from >= sending.first) {
      const hashes: string[] = [];
      for (let index = from; index < from + count; index++) {
        const sha = await this.publishedHash(sending, index, ctx.signal);
        if (sha === undefined) break;
        hashes.push(sha);
        sending.hashes.delete(index);   // asked once, in order
      }
      if (hashes.length > 0 || count === 0) return { hashes };
    }
    return { hashes: await this.hashesOnDisk(name, chunkSize, from, count) };
  }

  private async publishedHash(sending: Sending, index: number, signal: AbortSignal): Promise<string | undefined> {
    while (!sending.hashes.has(index) && !sending.ended) {
      signal.throwIfAborted();
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          sending.waiters.delete(wake);
          signal.removeEventListener('abort', wake);
          resolve();
        };
        sending.waiters.add(wake);
        signal.addEventListener('abort', wake, { once: true });
      });
    }
    return sending.hashes.get(index);
  }

  private async hashesOnDisk(name: string, chunkSize: number, from: number, count: number): Promise<string[]> {
    const info = await this.statFile(name);
    const known = this.digests.get(name);
    if (known?.hashes !== undefined && known.chunkSize === chunkSize && known.size === info.size && known.mtimeMs === info.mtimeMs) {
      return known.hashes.slice(from, from + count);
    }
    return this.diskHashing.run(async (buffer) => {
      const file = await this.openFile(name);
      try {
        const hashes: string[] = [];
        for (let index = from; index < from + count; index++) {
          const { sha256, bytes } = await hashRange(file, buffer, index * chunkSize, chunkSize);
          if (bytes === 0) break;
          hashes.push(sha256);
          if (bytes < chunkSize) break;
        }
        return hashes;
      } finally {
        await file.close();
      }
    });
  }

  async digest(name: string, transferId: string): Promise<{ size: number; sha256: string }> {
    const info = await this.statFile(name);
    const sending = this.sending.get(transferId);
    if (sending?.sha256 !== undefined && sending.name === name && sending.size === info.size) return { size: info.size, sha256: sending.sha256 };
    const known = this.digests.get(name);
    if (known !== undefined && known.size === info.size && known.mtimeMs === info.mtimeMs) return { size: known.size, sha256: known.sha256 };
    const sha256 = await this.diskHashing.run(async (buffer) => {
      const file = await this.openFile(name);
      try {
        return (await hashRange(file, buffer, 0, info.size)).sha256;
      } finally {
        await file.close();
      }
    });
    this.digests.set(name, { size: info.size, mtimeMs: info.mtimeMs, sha256 });
    return { size: info.size, sha256 };
  }
}

async function readFully(file: FileHandle, buffer: Buffer, position: number): Promise<{ bytesRead: number }> {
  let filled = 0;
  while (filled < buffer.length) {
    const { bytesRead } = await file.read(buffer, filled, buffer.length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return { bytesRead: filled };
}
