/**
 * Bounds-checked reading and writing of big-endian integers and strings inside one payload. A read past the end
 * raises MalformedPayloadError instead of returning undefined, so parsers cannot silently accept short payloads.
 */
import { MalformedPayloadError } from './errors.js';

// ignoreBOM: a leading U+FEFF is part of the string (a method, message or value), not a byte-order mark to drop
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

export function utf8(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

/** Encodes `text` and cuts it to at most `maxBytes` without splitting a character. */
export function utf8Truncated(text: string, maxBytes: number): Uint8Array {
  const bytes = utf8Encoder.encode(text);
  if (bytes.length <= maxBytes) return bytes;
  let end = maxBytes;
  // step back over continuation bytes (10xxxxxx) so the cut lands on a character boundary
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

export class ByteReader {
  private offset = 0;

  constructor(private readonly bytes: Uint8Array) {}

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  private need(n: number, what: string): void {
    if (this.remaining < n) {
      throw new MalformedPayloadError(`${what}: needs ${n} bytes, ${this.remaining} left`);
    }
  }

  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.offset++]!;
  }

  u16(what: string): number {
    this.need(2, what);
    const b = this.bytes;
    const v = (b[this.offset]! << 8) | b[this.offset + 1]!;
    this.offset += 2;
    return v;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = readU32(this.bytes, this.offset);
    this.offset += 4;
    return v;
  }

  /** A view, not a copy: valid only while the payload is. */
  bytesView(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  utf8(n: number, what: string): string {
    this.need(n, what);
    const text = decodeUtf8(this.bytes, this.offset, this.offset + n);
    if (text === undefined) throw new MalformedPayloadError(`${what}: not valid UTF-8`);
    this.offset += n;
    return text;
  }

  expectEnd(what: string): void {
    if (this.remaining !== 0) throw new MalformedPayloadError(`${what}: ${this.remaining} unexpected trailing bytes`);
  }
}

/**
 * Decodes UTF-8 (undefined when invalid). Short ASCII, the common case for method names and metadata, is decoded
 * without TextDecoder, whose per-call cost dominates for strings of a few bytes.
 */
export function decodeUtf8(bytes: Uint8Array, start: number, end: number): string | undefined {
  if (end - start <= 64) {
    let ascii = true;
    for (let i = start; i < end; i++) {
      if (bytes[i]! >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
  }
  try {
    return utf8Decoder.decode(bytes.subarray(start, end));
  } catch {
    return undefined;
  }
}

export class ByteWriter {
  private offset = 0;
  readonly bytes: Uint8Array;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
  }

  u8(v: number): this {
    this.bytes[this.offset++] = v;
    return this;
  }

  u16(v: number): this {
    const b = this.bytes;
    b[this.offset] = v >>> 8;
    b[this.offset + 1] = v;
    this.offset += 2;
    return this;
  }

  u32(v: number): this {
    writeU32(this.bytes, this.offset, v);
    this.offset += 4;
    return this;
  }

  raw(b: Uint8Array): this {
    this.bytes.set(b, this.offset);
    this.offset += b.length;
    return this;
  }

  /** The written prefix (normally the whole buffer, since sizes are computed first). */
  done(): Uint8Array {
    return this.offset === this.bytes.length ? this.bytes : this.bytes.subarray(0, this.offset);
  }
}

export function readU32(source: Uint8Array, offset: number): number {
  return ((source[offset]! << 24) | (source[offset + 1]! << 16) | (source[offset + 2]! << 8) | source[offset + 3]!) >>> 0;
}

export function writeU32(target: Uint8Array, offset: number, v: number): void {
  target[offset] = v >>> 24;
  target[offset + 1] = v >>> 16;
  target[offset + 2] = v >>> 8;
  target[offset + 3] = v;
}
