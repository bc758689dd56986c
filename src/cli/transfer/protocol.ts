/**
 * The resumable transfer service, `gridwire.transfer.v1`: its methods, messages, limits and the rule for names.
 * The data travels as bulk bodies (`upload` caller to handler, `download` handler to caller); hashes, acknowledgements
 * and verdicts travel as small unary messages beside it. docs/CLI.md "serve, send, recv" says the protocol in prose.
 *
 * A file is cut into chunks of `chunkSize` bytes (the last one may be shorter); each chunk has a sha256. A receiver
 * counts a chunk only once its own hash of the bytes equals the sender's: its verified offset is the end of the
 * longest prefix of such chunks. A resume starts at a chunk boundary no later than that offset, after the sender
 * compared the receiver's stored hashes with its own (so a stored prefix of another file is not trusted). The whole
 * file's sha256 is compared at the end.
 *
 * Sending (client is the sender):   status (paged) -> upload(offset, body) + commit(index, sha256) per chunk -> finish
 * Receiving (client is the receiver): stat -> hashes (paged, to check a local prefix) -> download(offset) + hashes(i) per chunk -> digest
 */
import { defineService, download, unary, upload } from '../../rpc/service.js';
import { RpcError } from '../../rpc/rpc-error.js';
import { Status } from '../../wire/constants.js';

/** Default chunk: small enough that a cut re-sends little, large enough that one hash message per chunk costs nothing. */
export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;
/**
 * Chunk sizes a peer accepts (64 KiB .. 16 MiB). A receiver holds up to UPLOAD_BUFFERS_PER_UPLOAD chunk buffers of an
 * upload while they wait for their hash and their write (64 MiB at 16 MiB chunks); what all uploads together may hold
 * is DEFAULT_UPLOAD_BUFFER_BYTES (a server-wide budget), and a chunk whose commit does not come within
 * DEFAULT_COMMIT_TIMEOUT_MS fails its upload (DEADLINE_EXCEEDED), which gives its buffers back.
 */
export const MIN_CHUNK_BYTES = 64 * 1024;
export const MAX_CHUNK_BYTES = 16 * 1024 * 1024;
/** Chunk buffers one upload holds at most (the one being filled plus those waiting for their commit or write). */
export const UPLOAD_BUFFERS_PER_UPLOAD = 4;
/**
 * Bytes of chunk buffers all uploads of a server may hold together: an upload reserves UPLOAD_BUFFERS_PER_UPLOAD x
 * chunkSize when it starts and is refused RESOURCE_EXHAUSTED when that does not fit (16 uploads at the default chunk).
 */
export const DEFAULT_UPLOAD_BUFFER_BYTES = 256 * 1024 * 1024;
/** How long a received chunk waits for its commit before its upload fails DEADLINE_EXCEEDED (and lets go of its buffers). */
export const DEFAULT_COMMIT_TIMEOUT_MS = 30_000;
/** Names a server receives at once (each holds two open files until idle): a new one past this is RESOURCE_EXHAUSTED. */
export const MAX_NAMES_RECEIVING = 64;
/** Default unacknowledged window of a sender, in chunks: what a cut can make it send again (and what it holds in memory). */
export const DEFAULT_WINDOW_CHUNKS = 4;
/** A receiver holds expected hashes for at most this many chunks ahead of its verified end (a commit further ahead is refused). */
export const MAX_CHUNKS_AHEAD = 64;
/** Hashes per status / hashes reply (a page): 1024 x 64 hex characters, well under any message limit. */
export const MAX_HASHES_PER_PAGE = 1024;
/**
 * Bytes of file a `hashes` call may ask the server to cover (count x chunkSize): a larger request is INVALID_ARGUMENT
 * (a caller pages with hashesPageOf). Bounds the disk reading one small message can cause.
 */
export const MAX_HASHED_BYTES_PER_CALL = 64 * 1024 * 1024;
/** Chunk hashes per `hashes` call at `chunkSize`: what MAX_HASHES_PER_PAGE and MAX_HASHED_BYTES_PER_CALL allow. */
export function hashesPageOf(chunkSize: number): number {
  return Math.max(1, Math.min(MAX_HASHES_PER_PAGE, Math.floor(MAX_HASHED_BYTES_PER_CALL / chunkSize)));
}
/** A name's bytes (as most file systems allow). */
export const MAX_NAME_BYTES = 255;
/** Suffixes of the receiver's own files: a transfer may not be named so. */
export const PART_SUFFIX = '.part';
export const STATE_SUFFIX = '.part.state';
/** The suffix of the state file's temporary copy while it is rewritten. */
export const STATE_TMP_SUFFIX = '.part.state.tmp';
/** C0 and C1 control characters and DEL: they would forge lines in a log or a terminal (ESC). */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;

export interface StatusRequest {
  name: string;
  transferId: string;
  chunkSize: number;
  /** First chunk index of the page of hashes wanted. */
  from: number;
}
export interface StatusReply {
  /** Chunks the receiver holds verified (for this chunk size; 0 when it holds another chunk size or nothing). */
  verifiedChunks: number;
  /** Hashes of chunks from..from+n (n <= MAX_HASHES_PER_PAGE), hex. */
  hashes: string[];
}
export interface UploadRequest {
  name: string;
  transferId: string;
  chunkSize: number;
  /** Where the body starts: a multiple of chunkSize, at most the receiver's verified offset. */
  offset: number;
  /** The whole size when the sender knows it (a file), else null (stdin). */
  size: number | null;
}
export interface UploadReply {
  /** Bytes the receiver took from this body. */
  received: number;
}
export interface CommitRequest {
  name: string;
  transferId: string;
  index: number;
  sha256: string;
}
export interface CommitReply {
  /** The receiver's verified offset once this chunk was verified. */
  verified: number;
}
export interface FinishRequest {
  name: string;
  transferId: string;
  size: number;
  sha256: string;
}
export interface FinishReply {
  /** True when the receiver's whole sha256 equals the sender's and the file is in place under its name. */
  ok: boolean;
  sha256: string;
  size: number;
}
export interface StatRequest {
  name: string;
}
export interface StatReply {
  size: number;
  mtimeMs: number;
}
export interface DownloadRequest {
  name: string;
  transferId: string;
  chunkSize: number;
  offset: number;
}
export interface HashesRequest {
  name: string;
  /** The download whose chunk hashes are wanted (the server hashes as it sends), or '' for the file on disk. */
  transferId: string;
  chunkSize: number;
  from: number;
  count: number;
}
export interface HashesReply {
  hashes: string[];
}
export interface DigestRequest {
  name: string;
  transferId: string;
}
export interface DigestReply {
  size: number;
  sha256: string;
}

export const TransferService = defineService('gridwire.transfer.v1', {
  /** Sending: the receiver's verified chunks of a name (a page of their hashes), to find where to resume. */
  status: unary<StatusRequest, StatusReply>(),
  /** Sending: the bytes from `offset`; the receiver hashes each chunk and waits for its commit. */
  upload: upload<UploadRequest, UploadReply>(),
  /** Sending: the sender's hash of one chunk; answers once the receiver verified (and wrote) that chunk. */
  commit: unary<CommitRequest, CommitReply>(),
  /** Sending: the whole size and sha256; the receiver compares and, when equal, renames the file into place. */
  finish: unary<FinishRequest, FinishReply>(),
  /** Receiving: a file's size. */
  stat: unary<StatRequest, StatReply>(),
  /** Receiving: the bytes of a file from `offset`. */
  download: download<DownloadRequest>(),
  /** Receiving: the server's hashes of chunks from..from+count (of a running download, or read from disk). */
  hashes: unary<HashesRequest, HashesReply>(),
  /** Receiving: the whole file's sha256. */
  digest: unary<DigestRequest, DigestReply>(),
});
export type TransferMethods = (typeof TransferService)['methods'];

/**
 * `text` quoted for a log line or a message: JSON.stringify, plus the DEL and C1 controls it leaves raw (\u009b is a
 * terminal's CSI). For strings a peer sent (a node name, a transfer name): they cannot forge a line or a terminal escape.
 */
export function quoted(text: string): string {
  return JSON.stringify(text).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Why `name` cannot be a transfer's name, or undefined when it can: a plain file name, no path. */
export function nameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return 'a name must be a non-empty string';
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return `a name must be at most ${MAX_NAME_BYTES} bytes`;
  if (name.includes('/') || name.includes('\\')) return `a name is a plain file name, without "/" or "\\" (got ${quoted(name)})`;
  if (name.includes('\0')) return 'a name must not contain NUL';
  if (CONTROL_CHARACTERS.test(name)) return `a name must not contain control characters (got ${quoted(name)})`;
  if (name === '.' || name === '..') return `a name must not be "." or ".."`;
  // case-insensitive: on a case-insensitive file system NAME.PART is the receiver's own NAME.part
  const lower = name.toLowerCase();
  if (lower.endsWith(PART_SUFFIX) || lower.endsWith(STATE_SUFFIX) || lower.endsWith(STATE_TMP_SUFFIX)) {
    return `a name must not end in ${PART_SUFFIX}, ${STATE_SUFFIX} or ${STATE_TMP_SUFFIX}, in any case (the receiver's partial files)`;
  }
  return undefined;
}

/** Throws INVALID_ARGUMENT when `name` is not a plain file name. */
export function checkName(name: unknown): asserts name is string {
  const problem = nameProblem(name);
  if (problem !== undefined) throw new RpcError(Status.INVALID_ARGUMENT, problem);
}

/** Throws INVALID_ARGUMENT for a chunk size out of range. */
export function checkChunkSize(chunkSize: unknown): asserts chunkSize is number {
  if (typeof chunkSize !== 'number' || !Number.isSafeInteger(chunkSize) || chunkSize < MIN_CHUNK_BYTES || chunkSize > MAX_CHUNK_BYTES) {
    throw new RpcError(Status.INVALID_ARGUMENT, `chunkSize must be an integer in ${MIN_CHUNK_BYTES}..${MAX_CHUNK_BYTES}`);
  }
}

/** Throws INVALID_ARGUMENT unless `value` is a safe integer >= 0. */
export function checkCount(value: unknown, what: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new RpcError(Status.INVALID_ARGUMENT, `${what} must be an integer >= 0`);
}

/** Throws INVALID_ARGUMENT unless `id` is a short string (a sender's random transfer id). */
export function checkTransferId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || id.length > 64) throw new RpcError(Status.INVALID_ARGUMENT, 'transferId must be a string of at most 64 characters');
}

/** Throws INVALID_ARGUMENT unless `sha` is 64 lower-case hex characters. */
export function checkSha256(sha: unknown): asserts sha is string {
  if (typeof sha !== 'string' || !/^[0-9a-f]{64}$/.test(sha)) throw new RpcError(Status.INVALID_ARGUMENT, 'sha256 must be 64 lower-case hex characters');
}

/** Errors after which a transfer redials and resumes: the connection or the call was lost, or a chunk came corrupted. */
export function isResumable(error: unknown): boolean {
  if (!(error instanceof RpcError)) return false;
  return error.code === Status.UNAVAILABLE || error.code === Status.ABORTED || error.code === Status.DEADLINE_EXCEEDED
    || error.code === Status.DATA_LOSS || error.code === Status.CANCELLED;
}
