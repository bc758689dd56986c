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
  MAX_HASHES_PER_PAGE, checkChunkSize, checkCount, checkName, checkTransferId, type DownloadRequest, type HashesRequest,
} from './protocol.js';
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
const MAX_DOWNLOAD_RECORDS = 256;

export class FileServer {
  private readonly sending = new Map<string, Sending>();
  private readonly digests = new Map<string, { size: number; mtimeMs: number; sha256: string }>();

  constructor(
    private readonly store: FileStore,
    private readonly log: (line: string) => void,
  ) {}

  /** A finished upload's whole sha256, so a download's digest need not read the file again. */
  async noteDigest(name: string, sha256: string): Promise<void> {
    const info = await stat(this.store.filePath(name));
    this.digests.set(name, { size: info.size, mtimeMs: info.mtimeMs, sha256 });
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
      throw new RpcError(Status.NOT_FOUND, `cannot read ${name}: ${(error as Error).message}`);
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
    const who = `${name} to ${ctx.peer.nodeName || 'peer'}`;
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
        throw error;
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
    const file = await this.openFile(name);
    try {
      const buffer = Buffer.allocUnsafe(chunkSize);
      const hashes: string[] = [];
      for (let index = from; index < from + count; index++) {
        const { bytesRead } = await readFully(file, buffer, index * chunkSize);
        if (bytesRead === 0) break;
        hashes.push(sha256Hex(buffer.subarray(0, bytesRead)));
        if (bytesRead < chunkSize) break;
      }
      return hashes;
    } finally {
      await file.close();
    }
  }

  async digest(name: string, transferId: string): Promise<{ size: number; sha256: string }> {
    const info = await this.statFile(name);
    const sending = this.sending.get(transferId);
    if (sending?.sha256 !== undefined && sending.name === name && sending.size === info.size) return { size: info.size, sha256: sending.sha256 };
    const known = this.digests.get(name);
    if (known !== undefined && known.size === info.size && known.mtimeMs === info.mtimeMs) return { size: known.size, sha256: known.sha256 };
    const file = await this.openFile(name);
    try {
      const whole = createHash('sha256');
      const buffer = Buffer.allocUnsafe(1024 * 1024);
      for (let at = 0; ;) {
        const { bytesRead } = await file.read(buffer, 0, buffer.length, at);
        if (bytesRead === 0) break;
        whole.update(buffer.subarray(0, bytesRead));
        at += bytesRead;
      }
      const sha256 = whole.digest('hex');
      this.digests.set(name, { size: info.size, mtimeMs: info.mtimeMs, sha256 });
      return { size: info.size, sha256 };
    } finally {
      await file.close();
    }
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
