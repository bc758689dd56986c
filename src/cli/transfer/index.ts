/**
 * Resumable file transfer over gridwire bulk bodies (`gridwire serve/send/recv`, the demo's replication). Reusable
 * with any client of TransferService: a session's, a channel's or a mesh peer's (`peer.client(TransferService)`).
 *
 * Sending:   `sendTransfer({ client, source, name, onProgress?, onEvent?, retryForMs?, signal?, chunkSize?, windowChunks? })`
 *            with `source` from fileSource(path) (seekable), streamSource(stdin) (read once; only the unacknowledged
 *            window is held) or generatedSource(size, open(offset)). Resolves with a TransferSummary (`ok` is the
 *            whole-sha256 verdict; `cuts`, `resentBytes`, `resumedFrom`), rejects when it could not finish (the last
 *            error: UNAVAILABLE after retryForMs without progress, or what the receiver refused).
 * Receiving: `new TransferServer(new FileStore(dir), { log? })`, then `listen(url, { services: [server.service] })`
 *            (or a mesh's `services`); `server.close()` at the end. A FileStore keeps `<name>.part` and
 *            `<name>.part.state` (per-chunk sha256) and renames the file into place when the whole digest matched.
 * Downloading: `receiveTransfer({ client, name, sink })` with `sink` from `await new FileStore(dir).open(name, chunkSize)`
 *            or `new StreamSink(stdout, chunkSize)`.
 * Progress:  ../progress.ts (ProgressBoard).
 */
export { TransferService, DEFAULT_CHUNK_BYTES, DEFAULT_WINDOW_CHUNKS, nameProblem, isResumable } from './protocol.js';
export type { TransferMethods } from './protocol.js';
export { sendTransfer } from './send.js';
export type { SendOptions, TransferProgress, TransferSummary } from './send.js';
export { receiveTransfer, verifyChunks } from './receive.js';
export type { ReceiveOptions } from './receive.js';
export { TransferServer } from './service.js';
export type { TransferServerOptions } from './service.js';
export { FileStore, FileSink, StreamSink, sha256Hex } from './sink.js';
export type { ChunkSink, Verdict } from './sink.js';
export { fileSource, streamSource, generatedSource, chunksOf } from './source.js';
export type { TransferSource } from './source.js';
export { DEFAULT_RETRY_FOR_MS } from './retry.js';
export type { TransferClient, TransferEvent, RetryOptions } from './retry.js';
