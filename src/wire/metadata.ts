/**
 * The metadata block carried by OPEN (request metadata) and END (trailer metadata): a bounded list of key/value
 * entries. Sizes are counted as they are read, with a fixed overhead per entry, so a flood of empty entries is
 * refused as early as a few large ones.
 *
 * Layout: count u8, then per entry: key length u8, key (ASCII), kind u8 (0 = UTF-8 text, 1 = bytes),
 * value length u16, value.
 */
import type { ByteReader} from './bytes.js';
import { ByteWriter, utf8 } from './bytes.js';
import { MAX_METADATA_KEY_BYTES, METADATA_ENTRY_OVERHEAD } from './constants.js';
import { MalformedPayloadError } from './errors.js';

/** Call metadata: lower-case keys; text or binary values. Objects handed out have no prototype. */
export type Metadata = Record<string, string | Uint8Array>;

export interface MetadataLimits {
  maxMetadataBytes: number;
  maxMetadataEntries: number;
}

/** Raised when metadata is well formed but larger than the receiver's limits: a RESOURCE_EXHAUSTED stream error. */
export class MetadataLimitError extends Error {
  override readonly name = 'MetadataLimitError';
}

const KEY_PATTERN = /^[a-z0-9][a-z0-9_.-]*$/;
const KIND_TEXT = 0;
const KIND_BYTES = 1;
const MAX_VALUE_BYTES = 0xffff;
/** The entry count is a u8 on the wire, whatever limits the caller configures. */
const MAX_WIRE_ENTRIES = 0xff;

/** Throws a TypeError that says what is wrong with a key, so callers learn it before anything is sent. */
export function checkMetadataKey(key: string): void {
  if (key.length === 0 || key.length > MAX_METADATA_KEY_BYTES || !KEY_PATTERN.test(key)) {
    const lower = key.toLowerCase();
    const hint = lower !== key && lower.length <= MAX_METADATA_KEY_BYTES && KEY_PATTERN.test(lower) ? ` (keys are lower case: ${JSON.stringify(lower)})` : '';
    throw new TypeError(
      `metadata key ${JSON.stringify(key)} is invalid: use 1-${MAX_METADATA_KEY_BYTES} characters of a-z 0-9 _ . - starting with a letter or digit${hint}`,
    );
  }
}

/** Size of the block as the receiver counts it (keys + values + fixed overhead per entry). */
export function metadataCost(keyBytes: number, valueBytes: number): number {
  return keyBytes + valueBytes + METADATA_ENTRY_OVERHEAD;
}

export const EMPTY_METADATA_BLOCK = new Uint8Array([0]);

export function encodeMetadata(metadata: Metadata | undefined, limits: MetadataLimits): Uint8Array {
  if (metadata === undefined) return EMPTY_METADATA_BLOCK;
  const keys = Object.keys(metadata);
  if (keys.length === 0) return EMPTY_METADATA_BLOCK;
  const maxEntries = Math.min(limits.maxMetadataEntries, MAX_WIRE_ENTRIES);
  if (keys.length > maxEntries) {
    throw new MetadataLimitError(`metadata has ${keys.length} entries; the limit is ${maxEntries}`);
  }
  const encoded: Array<[Uint8Array, number, Uint8Array]> = [];
  let size = 1;
  let cost = 0;
  for (const key of keys) {
    checkMetadataKey(key);
    const value = metadata[key];
    let kind: number;
    let bytes: Uint8Array;
    if (typeof value === 'string') {
      kind = KIND_TEXT;
      bytes = utf8(value);
    } else if (value instanceof Uint8Array) {
      kind = KIND_BYTES;
      bytes = value;
    } else {
      throw new TypeError(`metadata value for ${JSON.stringify(key)} must be a string or Uint8Array`);
    }
    if (bytes.length > MAX_VALUE_BYTES) {
      throw new MetadataLimitError(`metadata value for ${JSON.stringify(key)} is ${bytes.length} bytes; the limit is ${MAX_VALUE_BYTES}`);
    }
    cost += metadataCost(key.length, bytes.length);
    size += 1 + key.length + 1 + 2 + bytes.length;
    encoded.push([utf8(key), kind, bytes]);
  }
  if (cost > limits.maxMetadataBytes) {
    throw new MetadataLimitError(`metadata costs ${cost} bytes; the limit is ${limits.maxMetadataBytes}`);
  }
  const w = new ByteWriter(size).u8(encoded.length);
  for (const [key, kind, bytes] of encoded) w.u8(key.length).raw(key).u8(kind).u16(bytes.length).raw(bytes);
  return w.done();
}

/**
 * Reads a metadata block. Throws MalformedPayloadError for bad structure and MetadataLimitError as soon as the running
 * cost passes the limit (before the offending value is decoded). Binary values are copied out of the frame.
 */
export function decodeMetadata(reader: ByteReader, limits: MetadataLimits): Metadata {
  const count = reader.u8('metadata count');
  const out: Metadata = Object.create(null) as Metadata;
  if (count === 0) return out;
  if (count > limits.maxMetadataEntries) {
    throw new MetadataLimitError(`metadata has ${count} entries; the limit is ${limits.maxMetadataEntries}`);
  }
  let cost = 0;
  for (let i = 0; i < count; i++) {
    const keyLength = reader.u8('metadata key length');
    const key = reader.utf8(keyLength, 'metadata key');
    if (keyLength === 0 || keyLength > MAX_METADATA_KEY_BYTES || !KEY_PATTERN.test(key)) {
      throw new MalformedPayloadError(`metadata key ${JSON.stringify(key.slice(0, 80))} is invalid`);
    }
    const kind = reader.u8('metadata kind');
    const valueLength = reader.u16('metadata value length');
    cost += metadataCost(keyLength, valueLength);
    if (cost > limits.maxMetadataBytes) {
      throw new MetadataLimitError(`metadata exceeds ${limits.maxMetadataBytes} bytes`);
    }
    if (Object.hasOwn(out, key)) throw new MalformedPayloadError(`metadata key ${JSON.stringify(key)} appears twice`);
    if (kind === KIND_TEXT) out[key] = reader.utf8(valueLength, 'metadata value');
    else if (kind === KIND_BYTES) out[key] = new Uint8Array(reader.bytesView(valueLength, 'metadata value')); // a copy, even of a Buffer
    else throw new MalformedPayloadError(`metadata kind ${kind} is unknown`);
  }
  return Object.freeze(out);
}
