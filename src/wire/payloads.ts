/**
 * Encode and decode the payload of every frame type except DATA (whose payload is opaque bytes) and HELLO
 * (hello.ts). Pure functions; decoders throw MalformedPayloadError for structure and MetadataLimitError for size.
 */
import { ByteReader, ByteWriter, readU32, utf8Truncated, writeU32 } from './bytes.js';
import {
  CREDIT_PAYLOAD_BYTES,
  MAX_WINDOW,
  MAX_METHOD_BYTES,
  MAX_STATUS_MESSAGE_BYTES,
  PING_PAYLOAD_BYTES,
  isStatus,
  type Status,
} from './constants.js';
import { MalformedPayloadError } from './errors.js';
import { methodName } from './method-names.js';
import { decodeMetadata, EMPTY_METADATA_BLOCK, type Metadata, type MetadataLimits } from './metadata.js';

export interface OpenPayload {
  /** Time budget in ms the caller gives the call, relative to receipt; 0 = none. */
  deadlineMs: number;
  /** Receive window the opener grants the responder on this stream; 0 = the HELLO default. */
  window: number;
  method: string;
  metadata: Metadata;
}

/** Bytes of an OPEN payload for this method and metadata block. */
export function openPayloadLength(method: Uint8Array, metadataBlock: Uint8Array = EMPTY_METADATA_BLOCK): number {
  if (method.length === 0 || method.length > MAX_METHOD_BYTES) {
    throw new RangeError(`method name must be 1-${MAX_METHOD_BYTES} bytes, got ${method.length}`);
  }
  return 4 + 4 + 1 + method.length + metadataBlock.length;
}

/** Writes an OPEN payload at `offset` (openPayloadLength bytes); lets the session encode straight into its buffer. */
export function writeOpenPayload(
  target: Uint8Array,
  offset: number,
  deadlineMs: number,
  window: number,
  method: Uint8Array,
  metadataBlock: Uint8Array = EMPTY_METADATA_BLOCK,
): void {
  writeU32(target, offset, deadlineMs);
  writeU32(target, offset + 4, window);
  target[offset + 8] = method.length;
  target.set(method, offset + 9);
  target.set(metadataBlock, offset + 9 + method.length);
}

/** `method` is pre-encoded (callers cache it per method); `metadataBlock` comes from encodeMetadata. */
export function encodeOpen(deadlineMs: number, window: number, method: Uint8Array, metadataBlock: Uint8Array = EMPTY_METADATA_BLOCK): Uint8Array {
  if (window > MAX_WINDOW) throw new RangeError(`OPEN window ${window} is larger than 2^31-1`);
  const out = new Uint8Array(openPayloadLength(method, metadataBlock));
  writeOpenPayload(out, 0, deadlineMs, window, method, metadataBlock);
  return out;
}

const NO_METADATA: Metadata = Object.freeze(Object.create(null) as Metadata);

export function decodeOpen(payload: Uint8Array, limits: MetadataLimits): OpenPayload {
  if (payload.length < 10) throw new MalformedPayloadError(`OPEN: needs at least 10 bytes, got ${payload.length}`);
  const deadlineMs = readU32(payload, 0);
  const window = readU32(payload, 4);
  if (window > MAX_WINDOW) throw new MalformedPayloadError(`OPEN window ${window} is larger than 2^31-1`);
  const methodLength = payload[8]!;
  if (methodLength === 0) throw new MalformedPayloadError('OPEN method is empty');
  const metadataAt = 9 + methodLength;
  if (payload.length < metadataAt + 1) throw new MalformedPayloadError(`OPEN: method of ${methodLength} bytes runs past the payload`);
  const method = methodName(payload, 9, metadataAt);
  if (method === undefined) throw new MalformedPayloadError('OPEN method: not valid UTF-8');
  let metadata = NO_METADATA;
  if (payload[metadataAt] !== 0 || payload.length !== metadataAt + 1) {
    const r = new ByteReader(payload.subarray(metadataAt));
    metadata = decodeMetadata(r, limits);
    r.expectEnd('OPEN');
  }
  return { deadlineMs, window, method, metadata };
}

export interface EndPayload {
  status: Status;
  message: string;
  metadata: Metadata;
}

function readStatus(r: ByteReader, what: string): Status {
  const code = r.u8(what);
  if (!isStatus(code)) throw new MalformedPayloadError(`${what} ${code} is not a known status`);
  return code;
}

function readStatusMessage(r: ByteReader, what: string): string {
  const length = r.u16(`${what} length`);
  if (length > MAX_STATUS_MESSAGE_BYTES) throw new MalformedPayloadError(`${what} is ${length} bytes; the limit is ${MAX_STATUS_MESSAGE_BYTES}`);
  return r.utf8(length, what);
}

export function encodeEnd(status: Status, message: string, metadataBlock: Uint8Array = EMPTY_METADATA_BLOCK): Uint8Array {
  const text = utf8Truncated(message, MAX_STATUS_MESSAGE_BYTES);
  return new ByteWriter(1 + 2 + text.length + metadataBlock.length).u8(status).u16(text.length).raw(text).raw(metadataBlock).done();
}

export function decodeEnd(payload: Uint8Array, limits: MetadataLimits): EndPayload {
  const r = new ByteReader(payload);
  const status = readStatus(r, 'END status');
  const message = readStatusMessage(r, 'END message');
  const metadata = decodeMetadata(r, limits);
  r.expectEnd('END');
  return { status, message, metadata };
}

export interface ResetPayload {
  status: Status;
  message: string;
}

export function encodeReset(status: Status, message: string): Uint8Array {
  const text = utf8Truncated(message, MAX_STATUS_MESSAGE_BYTES);
  return new ByteWriter(1 + 2 + text.length).u8(status).u16(text.length).raw(text).done();
}

export function decodeReset(payload: Uint8Array): ResetPayload {
  const r = new ByteReader(payload);
  const status = readStatus(r, 'RESET status');
  const message = readStatusMessage(r, 'RESET message');
  r.expectEnd('RESET');
  return { status, message };
}

export function encodeCredit(increment: number): Uint8Array {
  return new ByteWriter(CREDIT_PAYLOAD_BYTES).u32(increment).done();
}

/** The frame decoder has already checked the length. */
export function decodeCredit(payload: Uint8Array): number {
  return new ByteReader(payload).u32('CREDIT increment');
}

export function encodePing(opaque: bigint): Uint8Array {
  const out = new Uint8Array(PING_PAYLOAD_BYTES);
  new DataView(out.buffer).setBigUint64(0, opaque);
  return out;
}

export function decodePing(payload: Uint8Array): bigint {
  return new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getBigUint64(0);
}

export interface GoawayPayload {
  /** Highest stream id opened by the receiver of GOAWAY that the sender accepted; streams above it were not processed. */
  lastStreamId: number;
  code: number;
  message: string;
}

export function encodeGoaway(lastStreamId: number, code: number, message: string): Uint8Array {
  const text = utf8Truncated(message, MAX_STATUS_MESSAGE_BYTES);
  return new ByteWriter(4 + 4 + 2 + text.length).u32(lastStreamId).u32(code).u16(text.length).raw(text).done();
}

export function decodeGoaway(payload: Uint8Array): GoawayPayload {
  const r = new ByteReader(payload);
  const lastStreamId = r.u32('GOAWAY last stream id');
  const code = r.u32('GOAWAY code');
  const message = readStatusMessage(r, 'GOAWAY message');
  r.expectEnd('GOAWAY');
  return { lastStreamId, code, message };
}
