/**
 * Metadata cost accounting: entry counts, the per-entry overhead that makes empty entries cost something, and the
 * exact boundary of maxMetadataBytes, checked on the encoder and the decoder alike.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ByteReader, utf8 } from '../../src/wire/bytes.js';
import { DEFAULT_LIMITS, MAX_METADATA_KEY_BYTES, METADATA_ENTRY_OVERHEAD, Status } from '../../src/wire/constants.js';
import { MalformedPayloadError } from '../../src/wire/errors.js';
import { decodeMetadata, encodeMetadata, metadataCost, MetadataLimitError, type Metadata, type MetadataLimits } from '../../src/wire/metadata.js';
import { decodeEnd, decodeOpen, encodeEnd, encodeOpen } from '../../src/wire/payloads.js';

const LIMITS: MetadataLimits = { maxMetadataBytes: DEFAULT_LIMITS.maxMetadataBytes, maxMetadataEntries: DEFAULT_LIMITS.maxMetadataEntries };
/** Limits far above anything the wire can carry, to build blocks the strict side must then refuse. */
const HUGE: MetadataLimits = { maxMetadataBytes: 1e9, maxMetadataEntries: 1e6 };

function emptyEntries(n: number): Metadata {
  const out: Metadata = {};
  for (let i = 0; i < n; i++) out[`k${i}`] = '';
  return out;
}

function decode(block: Uint8Array, limits: MetadataLimits = LIMITS): Metadata {
  const reader = new ByteReader(block);
  const metadata = decodeMetadata(reader, limits);
  assert.equal(reader.remaining, 0, 'the whole block was read');
  return metadata;
}

/** One metadata entry written by hand: key length, key, kind, value length (u16), value. */
function rawEntry(key: string, kind: number, valueLength: number, value: Uint8Array = new Uint8Array(valueLength)): number[] {
  return [key.length, ...Buffer.from(key, 'latin1'), kind, valueLength >>> 8, valueLength & 0xff, ...value];
}

void describe('metadata entry count', () => {
  void test('T-D7 refuses to encode 1e5 empty entries under the default limits', () => {
    assert.throws(() => encodeMetadata(emptyEntries(100_000), LIMITS), MetadataLimitError);
  });

  void test('T-D7 refuses to encode 1e5 empty entries even when the configured limits allow them (the count is a u8)', () => {
    assert.throws(() => encodeMetadata(emptyEntries(100_000), HUGE), MetadataLimitError);
  });

  void test('T-D7 refuses 256 entries instead of writing a count byte that wraps to 0', () => {
    assert.throws(() => encodeMetadata(emptyEntries(256), HUGE), MetadataLimitError);
    assert.throws(() => encodeMetadata(emptyEntries(257), HUGE), MetadataLimitError);
  });

  void test('T-D7 255 entries, the most a count byte can say, encode and decode when the limits allow them', () => {
    const metadata = emptyEntries(255);
    const block = encodeMetadata(metadata, HUGE);
    assert.equal(block[0], 255);
    assert.equal(Object.keys(decode(block, HUGE)).length, 255);
  });

  void test('T-D7 maxMetadataEntries entries pass and one more fails, on both ends', () => {
    const atLimit = emptyEntries(LIMITS.maxMetadataEntries);
    assert.equal(Object.keys(decode(encodeMetadata(atLimit, LIMITS))).length, LIMITS.maxMetadataEntries);

    const overLimit = emptyEntries(LIMITS.maxMetadataEntries + 1);
    assert.throws(() => encodeMetadata(overLimit, LIMITS), MetadataLimitError);
    const block = encodeMetadata(overLimit, HUGE);
    assert.throws(() => decode(block), MetadataLimitError);
  });

  void test('T-D7 a count above maxMetadataEntries is refused before any entry is read (the entries are not even there)', () => {
    // a short read would be MalformedPayloadError: getting MetadataLimitError proves nothing past the count was read
    assert.throws(() => decode(Uint8Array.of(LIMITS.maxMetadataEntries + 1)), MetadataLimitError);
    assert.throws(() => decode(Uint8Array.of(255)), MetadataLimitError);
    assert.throws(() => decode(Uint8Array.of(LIMITS.maxMetadataEntries)), MalformedPayloadError);
  });

  void test('T-D7 an OPEN or END carrying too many entries fails with MetadataLimitError', () => {
    const block = encodeMetadata(emptyEntries(LIMITS.maxMetadataEntries + 1), HUGE);
    assert.throws(() => decodeOpen(encodeOpen(0, 0, utf8('svc.method'), block), LIMITS), MetadataLimitError);
    assert.throws(() => decodeEnd(encodeEnd(Status.OK, '', block), LIMITS), MetadataLimitError);
  });
});

void describe('metadata byte cost', () => {
  const max = LIMITS.maxMetadataBytes;
  /** Value size that makes one entry with a 1-byte key cost exactly maxMetadataBytes. */
  const fill = max - 1 - METADATA_ENTRY_OVERHEAD;

  void test('T-D7 costs each entry key + value + 32 bytes of overhead', () => {
    assert.equal(metadataCost(1, fill), max);
    assert.equal(METADATA_ENTRY_OVERHEAD, 32);
  });

  for (const [kind, value] of [
    ['text', (n: number): string | Uint8Array => 'v'.repeat(n)],
    ['binary', (n: number): string | Uint8Array => new Uint8Array(n).fill(0xab)],
  ] as const) {
    void test(`T-D7 a ${kind} entry costing exactly maxMetadataBytes passes on both ends`, () => {
      const metadata = { k: value(fill) };
      const block = encodeMetadata(metadata, LIMITS);
      assert.deepEqual({ ...decode(block) }, metadata);
    });

    void test(`T-D7 a ${kind} entry costing maxMetadataBytes + 1 fails on both ends`, () => {
      const metadata = { k: value(fill + 1) };
      assert.throws(() => encodeMetadata(metadata, LIMITS), MetadataLimitError);
      const block = encodeMetadata(metadata, HUGE);
      assert.throws(() => decode(block), MetadataLimitError);
    });
  }

  void test('T-D7 text values are counted in UTF-8 bytes, not characters', () => {
    // same number of characters; swapping one "x" for the 2-byte "\u00e9" tips the block one byte over
    const atLimit = { k: 'x'.repeat(fill) };
    const over = { k: '\u00e9' + 'x'.repeat(fill - 1) };
    assert.equal(over.k.length, atLimit.k.length);
    assert.doesNotThrow(() => decode(encodeMetadata(atLimit, LIMITS)));
    assert.throws(() => encodeMetadata(over, LIMITS), MetadataLimitError);
    assert.throws(() => decode(encodeMetadata(over, HUGE)), MetadataLimitError);
  });

  void test('T-D7 empty entries still cost their overhead: 36 one-letter keys cost 36 * 33 bytes, the limit passes and one byte less fails', () => {
    const keys = [...'abcdefghijklmnopqrstuvwxyz0123456789'];
    const metadata: Metadata = Object.fromEntries(keys.map((k) => [k, '']));
    const cost = keys.length * (1 + METADATA_ENTRY_OVERHEAD);
    const exact: MetadataLimits = { maxMetadataBytes: cost, maxMetadataEntries: 64 };
    const tight: MetadataLimits = { maxMetadataBytes: cost - 1, maxMetadataEntries: 64 };
    const block = encodeMetadata(metadata, exact);
    assert.equal(Object.keys(decode(block, exact)).length, keys.length);
    assert.throws(() => encodeMetadata(metadata, tight), MetadataLimitError);
    assert.throws(() => decode(block, tight), MetadataLimitError);
  });

  void test('T-D7 the decoder stops at the entry whose declared size crosses the limit, before reading its value', () => {
    // entry 1 costs exactly the limit; entry 2 declares a 64 KiB value that is not there at all
    const block = Uint8Array.from([2, ...rawEntry('a', 1, fill), ...rawEntry('b', 1, 0xffff, new Uint8Array(0))]);
    assert.throws(() => decode(block), MetadataLimitError);
    // with room for it, the same bytes are a short read
    assert.throws(() => decode(block, HUGE), MalformedPayloadError);
  });

  void test('T-D7 many small entries are refused by cost even under the entry limit', () => {
    // 64 entries with 64-byte keys and 64-byte values: 64 * 160 = 10240 > 8192
    const metadata: Metadata = {};
    for (let i = 0; i < 64; i++) metadata[`${i}`.padStart(MAX_METADATA_KEY_BYTES, 'k')] = 'v'.repeat(64);
    assert.throws(() => encodeMetadata(metadata, LIMITS), MetadataLimitError);
    assert.throws(() => decode(encodeMetadata(metadata, HUGE)), MetadataLimitError);
  });

  void test('T-D7 a value longer than its u16 length field is refused by the encoder whatever the limits', () => {
    assert.throws(() => encodeMetadata({ k: new Uint8Array(0x10000) }, HUGE), MetadataLimitError);
    assert.doesNotThrow(() => encodeMetadata({ k: new Uint8Array(0xffff) }, HUGE));
  });

  void test('T-D7 a key over 64 bytes is refused by the encoder (TypeError) and the decoder (MalformedPayloadError)', () => {
    const key = 'k'.repeat(MAX_METADATA_KEY_BYTES + 1);
    assert.throws(() => encodeMetadata({ [key]: '' }, HUGE), TypeError);
    assert.throws(() => decode(Uint8Array.from([1, ...rawEntry(key, 0, 0)]), HUGE), MalformedPayloadError);
    const okKey = 'k'.repeat(MAX_METADATA_KEY_BYTES);
    assert.deepEqual(Object.keys(decode(encodeMetadata({ [okKey]: '' }, LIMITS))), [okKey]);
  });
});
