/**
 * The transfer service's handlers over one directory (`gridwire serve`, the demo's receivers): receiving uploads into
 * a FileStore here, and serving downloads of the files in it through files.ts. One upload per name at a time: a name is held by the
 * transfer id that last claimed it; another id is refused (RESOURCE_EXHAUSTED) while an upload of the first runs, and
 * takes the name over (with its verified prefix, which the new sender checks against its own hashes) once none runs.
 * A new attempt of the same transfer ends the old attempt's upload (a half-open connection the server has not noticed).
 *
 * Per name being received (Receiving), the chunk the upload handler waits on and the commits waiting for theirs:
 *
 *   event                        | upload handler                        | commit(index, sha)
 *   -----------------------------|---------------------------------------|-------------------------------------------
 *   status of a new attempt      | the earlier attempt's upload is ended | -
 *   no upload live yet           | (starting: truncates to its offset)   | waits until it is live
 *   chunk i complete, no commit  | waits (expect)                        | -
 *   commit i arrives             | woken with sha if it waits on i       | held in `expected` until i is verified
 *   hashes equal                 | appends, then answers the commit      | resolves { verified }
 *   hashes differ                | fails DATA_LOSS (the sender resumes)  | rejects DATA_LOSS
 *   commit's call is cancelled   | -                                     | dropped from `expected`
 *   index already verified       | -                                     | answered at once (equal) or DATA_LOSS
 *   index too far ahead          | -                                     | RESOURCE_EXHAUSTED (MAX_CHUNKS_AHEAD)
 */
import { statfs } from 'node:fs/promises';
import { serve, type CallContext } from '../../rpc/handler.js';
import { RpcError } from '../../rpc/rpc-error.js';
import type { ServiceImpl } from '../../rpc/server/registry.js';
import { Status } from '../../wire/constants.js';
import {
  DEFAULT_COMMIT_TIMEOUT_MS, DEFAULT_UPLOAD_BUFFER_BYTES, MAX_CHUNKS_AHEAD, MAX_HASHES_PER_PAGE, MAX_NAMES_RECEIVING,
  TransferService, UPLOAD_BUFFERS_PER_UPLOAD,
  checkChunkSize, checkCount, checkName, checkSha256, checkTransferId, quoted,
  type CommitRequest, type DownloadRequest, type FinishRequest, type HashesRequest, type UploadRequest,
} from './protocol.js';
import { FileServer } from './files.js';
import { peerSafeError } from './fs-errors.js';
import { verifyChunks } from './receive.js';
import type { FileSink, FileStore } from './sink.js';

export interface TransferServerOptions {
  /** One line per transfer event (start, resumed at, done, cut). Default: nothing. */
  log?: (line: string) => void;
  /** A name not uploaded to for this long lets go of its open files (its partial state stays on disk). Default 10 min. */
  idleMs?: number;
  /** Bytes of chunk buffers all uploads may hold together (see DEFAULT_UPLOAD_BUFFER_BYTES). */
  uploadBufferBytes?: number;
  /** How long a received chunk waits for its commit before its upload fails (see DEFAULT_COMMIT_TIMEOUT_MS). */
  commitTimeoutMs?: number;
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

interface Expected {
  sha256: string;
  resolve(reply: { verified: number }): void;
  reject(error: RpcError): void;
}

/** A name being received. */
interface Receiving {
  transferId: string;
  chunkSize: number;
  ready: Promise<FileSink>;
  sink: FileSink | undefined;
  upload: { abort: AbortController; done: Promise<void> } | undefined;
  /**
   * Resolved while an upload of the current transfer is receiving (after it truncated to its offset): commits wait
   * for it, so a commit never races the truncate of the attempt it belongs to. A fresh pending one after each upload.
   */
  live: Deferred;
  expected: Map<number, Expected>;
  /** The upload handler's waits for the hashes of chunks whose commit has not come yet (VERIFY_DEPTH at most). */
  waiters: Map<number, (sha: string) => void>;
  idle: NodeJS.Timeout | undefined;
}

export class TransferServer {
  readonly service: ServiceImpl;
  private readonly receiving = new Map<string, Receiving>();
  private readonly files: FileServer;
  private readonly log: (line: string) => void;
  private readonly idleMs: number;
  private readonly uploadBufferBytes: number;
  private readonly commitTimeoutMs: number;
  private bufferBytesReserved = 0;

  constructor(readonly store: FileStore, options: TransferServerOptions = {}) {
    this.log = options.log ?? (() => {});
    this.idleMs = options.idleMs ?? 600_000;
    this.uploadBufferBytes = options.uploadBufferBytes ?? DEFAULT_UPLOAD_BUFFER_BYTES;
    this.commitTimeoutMs = options.commitTimeoutMs ?? DEFAULT_COMMIT_TIMEOUT_MS;
    for (const [what, value] of [['uploadBufferBytes', this.uploadBufferBytes], ['commitTimeoutMs', this.commitTimeoutMs]] as const) {
      if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`TransferServer: ${what} must be a positive integer (got ${value})`);
    }
    this.files = new FileServer(store, this.log);
    // every handler's file system errors reach the peer as a fixed message with the errno code (fs-errors.ts)
    const writing = <A extends unknown[], R>(handler: (...args: A) => Promise<R>) => async (...args: A): Promise<R> => {
      try {
        return await handler(...args);
      } catch (error) {
        throw peerSafeError(error, 'write', this.log, 'transfer service');
      }
    };
    const reading = <A extends unknown[], R>(handler: (...args: A) => Promise<R>) => async (...args: A): Promise<R> => {
      try {
        return await handler(...args);
      } catch (error) {
        throw peerSafeError(error, 'read', this.log, 'transfer service');
      }
    };
    this.service = serve(TransferService, {
      status: writing(async (request) => {
        checkName(request.name);
        checkTransferId(request.transferId);
        checkChunkSize(request.chunkSize);
        checkCount(request.from, 'from');
        const sink = await this.claim(request.name, request.transferId, request.chunkSize);
        // a new attempt of the transfer: its earlier attempt's upload (on a connection not yet seen dead) must stop
        // appending before this answer, or the offset the sender picks from it would be stale
        await this.endUpload(this.receiving.get(request.name), 'superseded by a new attempt of the same transfer');
        return { verifiedChunks: sink.hashes.length, hashes: sink.hashes.slice(request.from, request.from + MAX_HASHES_PER_PAGE) };
      }),
      upload: writing((request: UploadRequest, body: AsyncIterable<Uint8Array>, ctx: CallContext) => this.upload(request, body, ctx)),
      commit: writing((request: CommitRequest, ctx: CallContext) => this.commit(request, ctx)),
      finish: writing((request: FinishRequest) => this.finish(request)),
      stat: reading(async (request: { name: string }) => {
        checkName(request.name);
        const info = await this.files.statFile(request.name);
        return { size: info.size, mtimeMs: info.mtimeMs };
      }),
      download: reading((request: DownloadRequest, ctx: CallContext) => this.files.download(request, ctx)),
      hashes: reading((request: HashesRequest, ctx: CallContext) => this.files.hashes(request, ctx)),
      digest: reading(async (request: { name: string; transferId: string }) => {
        checkName(request.name);
        checkTransferId(request.transferId);
        return this.files.digest(request.name, request.transferId);
      }),
    });
  }

  /** Bytes of chunk buffers the running uploads hold reserved (for tests and stats). */
  get uploadBufferBytesInUse(): number {
    return this.bufferBytesReserved;
  }

  /** Read buffers the disk hashing of `hashes` and `digest` allocated so far (for tests). */
  get diskHashBuffersAllocated(): number {
    return this.files.diskHashBuffersAllocated;
  }

  /** Ends every upload and lets go of every open file (partial state stays on disk). */
  async close(): Promise<void> {
    const ends: Promise<void>[] = [];
    for (const [name, receiving] of this.receiving) {
      receiving.upload?.abort.abort(new RpcError(Status.UNAVAILABLE, 'the server is closing'));
      ends.push((receiving.upload?.done ?? Promise.resolve()).then(() => this.letGo(name, receiving)));
    }
    await Promise.allSettled(ends);
  }

  /** The name's receiving state for `transferId`, its sink open (see the header for who may take a name). */
  private async claim(name: string, transferId: string, chunkSize: number): Promise<FileSink> {
    let receiving = this.receiving.get(name);
    if (receiving !== undefined && receiving.transferId !== transferId) {
      if (receiving.upload !== undefined) throw new RpcError(Status.RESOURCE_EXHAUSTED, `${name} is being received from another sender; try again when it is done`);
      this.log(`${quoted(name)}: taken over by transfer ${quoted(transferId.slice(0, 8))} (the previous sender went away)`);
      receiving.transferId = transferId;
      for (const expected of receiving.expected.values()) expected.reject(new RpcError(Status.ABORTED, `${name} was taken over by another transfer`));
      receiving.expected.clear();
    }
    if (receiving !== undefined && receiving.chunkSize !== chunkSize) {
      if (receiving.upload !== undefined) throw new RpcError(Status.RESOURCE_EXHAUSTED, `${name} is being received in another chunk size`);
      await this.letGo(name, receiving);
      receiving = undefined;
    }
    if (receiving === undefined) {
      if (this.receiving.size >= MAX_NAMES_RECEIVING) await this.letGoOfIdle();
      if (this.receiving.size >= MAX_NAMES_RECEIVING) {
        throw new RpcError(Status.RESOURCE_EXHAUSTED, `this server is receiving ${MAX_NAMES_RECEIVING} names already; try again later`);
      }
      const ready = this.store.open(name, chunkSize);
      receiving = { transferId, chunkSize, ready, sink: undefined, upload: undefined, expected: new Map(), waiters: new Map(), idle: undefined, live: deferred() };
      this.receiving.set(name, receiving);
      const created = receiving;
      ready.then((sink) => (created.sink = sink), () => {
        if (this.receiving.get(name) === created) this.receiving.delete(name);
      });
    }
    const sink = await receiving.ready;
    this.armIdle(name, receiving);
    return sink;
  }

  private armIdle(name: string, receiving: Receiving): void {
    clearTimeout(receiving.idle);
    receiving.idle = setTimeout(() => {
      if (receiving.upload === undefined && receiving.expected.size === 0) void this.letGo(name, receiving);
    }, this.idleMs);
    receiving.idle.unref();
  }

  /** Closes the names no upload is receiving (their partial state stays on disk; a later status reopens them). */
  private async letGoOfIdle(): Promise<void> {
    const idle = [...this.receiving].filter(([, receiving]) => receiving.upload === undefined && receiving.expected.size === 0);
    await Promise.all(idle.map(([name, receiving]) => this.letGo(name, receiving)));
  }

  private async letGo(name: string, receiving: Receiving): Promise<void> {
    clearTimeout(receiving.idle);
    if (this.receiving.get(name) === receiving) this.receiving.delete(name);
    // a name that never got a verified chunk leaves nothing behind (each status of a new name creates its files)
    await receiving.ready.then((sink) => sink.closeOrDiscard(), () => {});
  }

  private async upload(request: UploadRequest, body: AsyncIterable<Uint8Array>, ctx: CallContext): Promise<{ received: number }> {
    checkName(request.name);
    checkTransferId(request.transferId);
    checkChunkSize(request.chunkSize);
    checkCount(request.offset, 'offset');
    if (request.size !== null) checkCount(request.size, 'size');
    if (request.offset % request.chunkSize !== 0) throw new RpcError(Status.INVALID_ARGUMENT, 'offset must be a multiple of chunkSize');
    const { name, chunkSize } = request;
    const sink = await this.claim(name, request.transferId, chunkSize);
    const receiving = this.receiving.get(name)!;
    await this.endUpload(receiving, 'superseded by a new attempt of the same transfer');
    if (request.offset > sink.verifiedBytes) {
      throw new RpcError(Status.FAILED_PRECONDITION, `offset ${request.offset} is past the ${sink.verifiedBytes} bytes verified here; ask status first`);
    }
    if (request.size !== null && request.size > request.offset) await this.checkFreeSpace(request.size - request.offset);
    // the chunk buffers this upload may hold, reserved from the server-wide budget before any is allocated
    const reserved = UPLOAD_BUFFERS_PER_UPLOAD * chunkSize;
    if (this.bufferBytesReserved + reserved > this.uploadBufferBytes) {
      throw new RpcError(Status.RESOURCE_EXHAUSTED, `this server holds ${this.bufferBytesReserved} of its ${this.uploadBufferBytes} bytes of upload buffers already; try again later`);
    }
    this.bufferBytesReserved += reserved;
    const abort = new AbortController();
    let ended!: () => void;
    receiving.upload = { abort, done: new Promise((resolve) => (ended = resolve)) };
    const onCallAbort = (): void => abort.abort(ctx.signal.reason);
    ctx.signal.addEventListener('abort', onCallAbort, { once: true });
    const first = request.offset / chunkSize;
    const who = `${quoted(name)} from ${quoted(ctx.peer.nodeName || 'peer')}`;   // peer strings, quoted: one log line each
    this.log(request.offset === 0 ? `${who}: receiving${request.size === null ? '' : ` ${request.size} bytes`}` : `${who}: resumed at ${request.offset}`);
    try {
      await sink.truncate(first);
      for (const [index, expected] of receiving.expected) {   // commits of chunks verified before: answer them now
        if (index >= sink.hashes.length) continue;
        receiving.expected.delete(index);
        if (sink.hashes[index] === expected.sha256) expected.resolve({ verified: sink.verifiedBytes });
        else expected.reject(new RpcError(Status.DATA_LOSS, `chunk ${index} differs from the one verified here`));
      }
      receiving.live.resolve();
      const declared = request.size;
      const expect = (index: number): Promise<string> => {
        if (declared === null || index * chunkSize < declared) return this.expect(receiving, index, abort);
        const beyond = new RpcError(Status.OUT_OF_RANGE, `chunk ${index} is past the ${declared} bytes this upload declared`);
        abort.abort(beyond);
        return Promise.reject(beyond);
      };
      const received = await verifyChunks(body, sink, first, expect, (index) => {
        const expected = receiving.expected.get(index);
        receiving.expected.delete(index);
        expected?.resolve({ verified: sink.verifiedBytes });
      }, abort.signal);
      for (const [index, expected] of receiving.expected) {
        receiving.expected.delete(index);
        expected.reject(new RpcError(Status.OUT_OF_RANGE, `the upload ended before chunk ${index}`));
      }
      this.log(`${who}: upload ended at ${sink.verifiedBytes} verified bytes`);
      return { received };
    } catch (error) {
      const failure = peerSafeError(error, 'write', this.log, quoted(name));
      if (failure.code === Status.DATA_LOSS) {
        const expected = receiving.expected.get(sink.hashes.length);
        receiving.expected.delete(sink.hashes.length);
        expected?.reject(failure);
      }
      this.log(`${who}: cut at ${sink.verifiedBytes} verified bytes (${failure.message})`);
      throw failure;
    } finally {
      ctx.signal.removeEventListener('abort', onCallAbort);
      this.bufferBytesReserved -= reserved;
      receiving.upload = undefined;
      receiving.waiters.clear();
      receiving.live = deferred();
      ended();
      this.armIdle(name, receiving);
    }
  }

  /** RESOURCE_EXHAUSTED when the directory's file system has less than `bytes` free (skipped where statfs fails). */
  private async checkFreeSpace(bytes: number): Promise<void> {
    const info = await statfs(this.store.dir).catch(() => undefined);
    if (info === undefined) return;
    const free = info.bavail * info.bsize;
    if (free < bytes) throw new RpcError(Status.RESOURCE_EXHAUSTED, `the receiver has ${free} bytes free, the upload needs ${bytes}`);
  }

  /** Ends the upload running for `receiving` (an earlier attempt's), and waits until it appends nothing more. */
  private async endUpload(receiving: Receiving | undefined, why: string): Promise<void> {
    while (receiving?.upload !== undefined) {
      receiving.upload.abort.abort(new RpcError(Status.ABORTED, why));
      await receiving.upload.done;
    }
  }

  /**
   * The sender's hash of chunk `index`: at once when its commit came, else when it comes; DEADLINE_EXCEEDED when it
   * does not come within commitTimeoutMs (a sender that never commits would hold the upload's buffers forever).
   */
  private expect(receiving: Receiving, index: number, upload: AbortController): Promise<string> {
    const signal = upload.signal;
    const expected = receiving.expected.get(index);
    if (expected !== undefined) return Promise.resolve(expected.sha256);
    return new Promise((resolve, reject) => {
      const aborted = (): void => {
        clearTimeout(timer);
        reject(signal.reason as Error);
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', aborted);
        receiving.waiters.delete(index);
        const late = new RpcError(Status.DEADLINE_EXCEEDED, `chunk ${index} got no commit within ${this.commitTimeoutMs} ms`);
        upload.abort(late);   // the body may be waiting for more bytes that never come: stop that wait too
        reject(late);
      }, this.commitTimeoutMs);
      signal.addEventListener('abort', aborted, { once: true });
      receiving.waiters.set(index, (sha) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', aborted);
        resolve(sha);
      });
    });
  }

  private async commit(request: CommitRequest, ctx: CallContext): Promise<{ verified: number }> {
    checkName(request.name);
    checkTransferId(request.transferId);
    checkCount(request.index, 'index');
    checkSha256(request.sha256);
    const receiving = this.receiving.get(request.name);
    const gone = (): RpcError => new RpcError(Status.ABORTED, `no transfer ${request.transferId.slice(0, 8)} of ${request.name} here (taken over, or the server restarted): ask status`);
    if (receiving === undefined || receiving.transferId !== request.transferId) throw gone();
    await untilLive(receiving, ctx.signal);
    if (this.receiving.get(request.name) !== receiving || receiving.transferId !== request.transferId) throw gone();
    const sink = await receiving.ready;
    const { index, sha256 } = request;
    if (index < sink.hashes.length) {
      if (sink.hashes[index] === sha256) return { verified: sink.verifiedBytes };
      throw new RpcError(Status.DATA_LOSS, `chunk ${index} differs from the one verified here`);
    }
    if (index >= sink.hashes.length + MAX_CHUNKS_AHEAD) {
      throw new RpcError(Status.RESOURCE_EXHAUSTED, `chunk ${index} is more than ${MAX_CHUNKS_AHEAD} chunks ahead of the ${sink.hashes.length} verified`);
    }
    return new Promise((resolve, reject) => {
      const entry: Expected = {
        sha256,
        resolve: (reply) => {
          ctx.signal.removeEventListener('abort', dropped);
          resolve(reply);
        },
        reject: (error) => {
          ctx.signal.removeEventListener('abort', dropped);
          reject(error);
        },
      };
      const dropped = (): void => {
        if (receiving.expected.get(index) === entry) receiving.expected.delete(index);
        reject(ctx.signal.reason as Error);
      };
      ctx.signal.addEventListener('abort', dropped, { once: true });
      receiving.expected.get(index)?.reject(new RpcError(Status.ABORTED, `a newer commit of chunk ${index} came`));
      receiving.expected.set(index, entry);
      const waiter = receiving.waiters.get(index);
      receiving.waiters.delete(index);
      waiter?.(sha256);
    });
  }

  private async finish(request: FinishRequest): Promise<{ ok: boolean; sha256: string; size: number }> {
    checkName(request.name);
    checkTransferId(request.transferId);
    checkCount(request.size, 'size');
    checkSha256(request.sha256);
    const { name } = request;
    const receiving = this.receiving.get(name);
    if (receiving === undefined || receiving.transferId !== request.transferId) {
      throw new RpcError(Status.ABORTED, `no transfer ${request.transferId.slice(0, 8)} of ${name} here (taken over, or the server restarted): ask status`);
    }
    if (receiving.upload !== undefined) throw new RpcError(Status.FAILED_PRECONDITION, `an upload of ${name} is still running`);
    const sink = await receiving.ready;
    const verdict = await sink.finish(request.size, request.sha256);
    await this.letGo(name, receiving);
    if (verdict.ok) {
      await this.files.noteDigest(name, verdict.sha256, sink.chunkSize, sink.hashes);
      this.log(`${quoted(name)}: done, ${verdict.size} bytes, sha256 ${verdict.sha256}`);
    } else {
      this.log(`${quoted(name)}: sha256 MISMATCH (ours ${verdict.sha256}, the sender's ${request.sha256}); discarded`);
    }
    return verdict;
  }

}

/** Waits until an upload of `receiving` is live (or the commit's call ends: its reason is thrown). */
async function untilLive(receiving: Receiving, signal: AbortSignal): Promise<void> {
  for (let live = receiving.live; ; live = receiving.live) {
    signal.throwIfAborted();
    let onAbort!: () => void;
    await Promise.race([live.promise, new Promise<void>((resolve) => {
      onAbort = resolve;
      signal.addEventListener('abort', onAbort, { once: true });
    })]);
    signal.removeEventListener('abort', onAbort);
    signal.throwIfAborted();
    if (receiving.live === live) return;   // still the upload it waited for (a new one replaced it: wait for that)
  }
}
