/**
 * The receiving side of a download (`gridwire recv`): checks the sink's verified prefix against the server's hashes
 * (a local `.part` of another version of the file is not trusted), downloads from the first chunk it lacks, verifies
 * each chunk against the server's hash of it before the sink sees it, and compares the whole sha256 at the end.
 * After a cut it does the same again from its verified offset. Also `verifyChunks`, the loop that the upload handler
 * (service.ts) shares: cut a body into chunks, hash, wait for the expected hash, append.
 */
import { randomUUID } from 'node:crypto';
import { RpcError } from '../../rpc/rpc-error.js';
import { Status } from '../../wire/constants.js';
import { DEFAULT_CHUNK_BYTES, UPLOAD_BUFFERS_PER_UPLOAD, checkName, hashesPageOf } from './protocol.js';
import { clientOf, retrying, type RetryOptions, type TransferClient } from './retry.js';
import type { TransferProgress, TransferSummary } from './send.js';
import { sha256Hex, type ChunkSink } from './sink.js';
import { BufferPool, chunksOf } from './source.js';

export interface ReceiveOptions extends RetryOptions {
  client: TransferClient;
  name: string;
  /** Where verified chunks go: a FileStore's sink (resumable across runs) or a StreamSink (stdout). Its chunk size is the transfer's. */
  sink: ChunkSink;
  onProgress?: (progress: TransferProgress) => void;
}

export { DEFAULT_CHUNK_BYTES };

/** Chunks hashed and waiting for their expected hash or their write, at most, while the next one is read. */
const VERIFY_DEPTH = UPLOAD_BUFFERS_PER_UPLOAD - 1;

/**
 * Reads `body` from chunk `firstIndex` on; for each chunk (the last one may be short, and comes only at a clean end)
 * hashes it, waits for `expected(index)`, and appends it to `sink` when equal: DATA_LOSS when not. Up to VERIFY_DEPTH
 * chunks wait for their hash and write (in order) while the next is read, so a write's latency does not stall the
 * body. `signal` stops a wait for more bytes. Resolves with the bytes taken once all are appended.
 */
export async function verifyChunks(
  body: AsyncIterable<Uint8Array>,
  sink: ChunkSink,
  firstIndex: number,
  expected: (index: number) => Promise<string>,
  onVerified?: (index: number) => void,
  signal?: AbortSignal,
): Promise<number> {
  const pool = sink.keepsChunks ? undefined : new BufferPool(sink.chunkSize, VERIFY_DEPTH + 1);
  let index = firstIndex;
  let bytes = 0;
  let tail: Promise<void> = Promise.resolve();
  const pending: Promise<void>[] = [];
  let stopped = false;
  let appending: Promise<void> | undefined;
  try {
    for await (const chunk of chunksOf(signal === undefined ? body : abortable(body, signal), sink.chunkSize, pool)) {
      const at = index++;
      const mine = sha256Hex(chunk);
      const theirs = expected(at);
      theirs.catch(() => {});   // awaited in turn below; an attempt that fails first must not leave it unhandled
      tail = tail.then(async () => {
        const sha = await theirs;
        if (stopped) return;
        if (mine !== sha) throw new RpcError(Status.DATA_LOSS, `chunk ${at} arrived with sha256 ${mine.slice(0, 12)}..., the sender's is ${sha.slice(0, 12)}...`);
        appending = sink.append(at, chunk, mine);
        await appending;
        appending = undefined;
        bytes += chunk.length;
        pool?.give(chunk);
        onVerified?.(at);
      });
      tail.catch(() => {});
      pending.push(tail);
      if (pending.length >= VERIFY_DEPTH) await pending.shift();
    }
    await tail;
  } catch (error) {
    // nothing may be appended once this returns: the next attempt truncates the sink and appends its own chunks
    // (an append under way finishes; chunks still waiting for their hash see `stopped` and drop out)
    stopped = true;
    await appending?.catch(() => {});
    throw error;
  }
  return bytes;
}

/**
 * `iterable`, whose wait for the next item rejects with the signal's reason once it aborts. Each wait listens for the
 * abort on its own and stops listening when it settles: a race of every `next()` against one promise that lives as
 * long as the body would keep each of those races, and the piece each one resolved with, reachable from that
 * promise until the body ends (a receiver held every byte of an upload in memory).
 */
async function* abortable<T>(iterable: AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  const iterator = iterable[Symbol.asyncIterator]();
  try {
    for (;;) {
      const next = await nextOrAbort(iterator, signal);
      if (next.done === true) return;
      yield next.value;
    }
  } finally {
    void iterator.return?.();
  }
}

function nextOrAbort<T>(iterator: AsyncIterator<T>, signal: AbortSignal): Promise<IteratorResult<T>> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    iterator.next().then(
      (result) => {
        signal.removeEventListener('abort', onAbort);
        resolve(result);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}

/** Downloads `name` into `sink`; resolves with the summary (check `ok`), rejects when it could not finish. */
export async function receiveTransfer(options: ReceiveOptions): Promise<TransferSummary> {
  checkName(options.name);
  const { sink, name } = options;
  const chunkSize = sink.chunkSize;
  const transferId = randomUUID();
  const started = performance.now();
  let size: number | undefined;
  let resumedFrom = -1;
  let receivedHigh = 0;
  let resentBytes = 0;
  /** Counts every byte that arrives at an offset an earlier body had reached (verified or not). */
  async function* counted(body: AsyncIterable<Uint8Array>, offset: number): AsyncGenerator<Uint8Array> {
    for await (const piece of body) {
      if (offset < receivedHigh) resentBytes += Math.min(piece.length, receivedHigh - offset);
      offset += piece.length;
      receivedHigh = Math.max(receivedHigh, offset);
      yield piece;
    }
  }
  const report = (): void => options.onProgress?.({ verified: sink.verifiedBytes, total: size });
  const attempt = async (n: number): Promise<{ ok: boolean; sha256: string; peerSha256: string }> => {
    const client = await clientOf(options.client);
    const info = await client.stat({ name });
    if (size !== undefined && info.size !== size) throw new RpcError(Status.DATA_LOSS, `${name} changed size on the server during the transfer (${size} -> ${info.size})`);
    size = info.size;
    // keep the local prefix only as far as the server's hashes agree with it
    let keep = 0;
    while (keep < sink.hashes.length) {
      const count = Math.min(hashesPageOf(chunkSize), sink.hashes.length - keep);
      const page = await client.hashes({ name, transferId: '', chunkSize, from: keep, count });
      let i = 0;
      while (i < page.hashes.length && page.hashes[i] === sink.hashes[keep + i]) i++;
      keep += i;
      if (i < count) break;
    }
    await sink.truncate(keep);
    const offset = sink.verifiedBytes;
    if (resumedFrom < 0) resumedFrom = offset;
    if (n > 0) options.onEvent?.({ type: 'resume', offset, attempt: n });
    report();
    if (offset < size || size === 0) {
      const abort = new AbortController();
      const outer = options.signal;
      const onOuter = (): void => abort.abort(outer!.reason);
      outer?.addEventListener('abort', onOuter, { once: true });
      try {
        const body = client.download({ name, transferId, chunkSize, offset }, { signal: abort.signal });
        const expected = async (index: number): Promise<string> => {
          const reply = await client.hashes({ name, transferId, chunkSize, from: index, count: 1 }, { signal: abort.signal });
          const sha = reply.hashes[0];
          if (sha === undefined) throw new RpcError(Status.DATA_LOSS, `the server has no chunk ${index} of ${name}`);
          return sha;
        };
        await verifyChunks(counted(body, offset), sink, offset / chunkSize, expected, report);
      } catch (error) {
        abort.abort(error);
        throw error;
      } finally {
        outer?.removeEventListener('abort', onOuter);
      }
    }
    if (sink.verifiedBytes !== size) throw new RpcError(Status.DATA_LOSS, `the download of ${name} ended at ${sink.verifiedBytes} of ${size} bytes`);
    const digest = await client.digest({ name, transferId });
    const verdict = await sink.finish(size, digest.sha256);
    return { ok: verdict.ok, sha256: verdict.sha256, peerSha256: digest.sha256 };
  };
  const { value, cuts } = await retrying(attempt, () => sink.verifiedBytes, options);
  const seconds = (performance.now() - started) / 1000;
  const bytes = size ?? 0;
  return {
    name,
    ok: value.ok,
    bytes,
    sha256: value.sha256,
    peerSha256: value.peerSha256,
    seconds,
    mibPerSecond: (bytes - Math.max(0, resumedFrom)) / 2 ** 20 / Math.max(seconds, 1e-6),
    cuts,
    resentBytes,
    resumedFrom: Math.max(0, resumedFrom),
  };
}
