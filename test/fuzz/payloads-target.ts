/**
 * Fuzz target `payloads` (reliability.md T-F1): one payload into every payload decoder (src/wire/payloads.ts,
 * hello.ts, metadata.ts), under the default metadata limits and tight ones. Properties:
 * - only MalformedPayloadError (NotGridwireError included) or MetadataLimitError is thrown, each decode < 50 ms;
 * - what decodes re-encodes to bytes that decode to the same value;
 * - nothing on Object.prototype changes, and decoded metadata has no prototype.
 * The corpus form is the payload itself: it is fed to every decoder.
 */
import assert from 'node:assert/strict';

import fc from 'fast-check';

import { ByteReader, utf8 } from '../../src/wire/bytes.js';
import { CREDIT_PAYLOAD_BYTES, DEFAULT_LIMITS, HELLO_MAGIC, MAX_WINDOW, PING_PAYLOAD_BYTES, Status } from '../../src/wire/constants.js';
import { MalformedPayloadError } from '../../src/wire/errors.js';
import { decodeHello, encodeHello, type Hello } from '../../src/wire/hello.js';
import { decodeMetadata, encodeMetadata, MetadataLimitError, type Metadata, type MetadataLimits } from '../../src/wire/metadata.js';
import {
  decodeCredit,
  decodeEnd,
  decodeGoaway,
  decodeOpen,
  decodePing,
  decodeReset,
  encodeCredit,
  encodeEnd,
  encodeGoaway,
  encodeOpen,
  encodePing,
  encodeReset,
} from '../../src/wire/payloads.js';
import { concat, hex, maybeMutated, onlyThrows, withinBudget, type FuzzTarget } from './harness.js';

const LIMIT_SETS: readonly MetadataLimits[] = [
  { maxMetadataBytes: DEFAULT_LIMITS.maxMetadataBytes, maxMetadataEntries: DEFAULT_LIMITS.maxMetadataEntries },
  { maxMetadataBytes: 100, maxMetadataEntries: 2 },
];
const PAYLOAD_ERRORS = [MalformedPayloadError, MetadataLimitError];
const MAX_TEXT_SETTING_BYTES = 255;

/** One decoder and how to re-encode what it decoded (undefined: the value cannot be sent by us, by design). */
interface PayloadCodec {
  name: string;
  decode(payload: Uint8Array, limits: MetadataLimits): unknown;
  reencode(value: never, limits: MetadataLimits): Uint8Array | undefined;
}

const plain = (m: Metadata): Metadata => ({ ...m });

const CODECS: readonly PayloadCodec[] = [
  {
    name: 'OPEN',
    decode: decodeOpen,
    reencode: (v: ReturnType<typeof decodeOpen>, limits: MetadataLimits) => encodeOpen(v.deadlineMs, v.window, utf8(v.method), encodeMetadata(v.metadata, limits)),
  },
  { name: 'END', decode: decodeEnd, reencode: (v: ReturnType<typeof decodeEnd>, limits: MetadataLimits) => encodeEnd(v.status, v.message, encodeMetadata(v.metadata, limits)) },
  { name: 'RESET', decode: (p) => decodeReset(p), reencode: (v: ReturnType<typeof decodeReset>) => encodeReset(v.status, v.message) },
  { name: 'GOAWAY', decode: (p) => decodeGoaway(p), reencode: (v: ReturnType<typeof decodeGoaway>) => encodeGoaway(v.lastStreamId, v.code, v.message) },
  {
    name: 'HELLO',
    decode: (p) => decodeHello(p),
    // text settings past 255 bytes are read (a newer peer may send them) but never written by us
    reencode: (v: Hello) => (utf8(v.settings.nodeName).length > MAX_TEXT_SETTING_BYTES || utf8(v.settings.label).length > MAX_TEXT_SETTING_BYTES ? undefined : encodeHello(v)),
  },
  {
    name: 'metadata block',
    decode: (p, limits) => {
      const reader = new ByteReader(p);
      const metadata = decodeMetadata(reader, limits);
      reader.expectEnd('metadata block');
      return metadata;
    },
    reencode: (v: Metadata, limits: MetadataLimits) => encodeMetadata(v, limits),
  },
  // the frame decoder has checked these two lengths before their payload decoders run
  {
    name: 'CREDIT',
    decode: (p) => (p.length === CREDIT_PAYLOAD_BYTES ? decodeCredit(p) : undefined),
    reencode: (v: number | undefined) => (v === undefined ? undefined : encodeCredit(v)),
  },
  {
    name: 'PING',
    decode: (p) => (p.length === PING_PAYLOAD_BYTES ? decodePing(p) : undefined),
    reencode: (v: bigint | undefined) => (v === undefined ? undefined : encodePing(v)),
  },
];

/** Metadata objects compared by their entries (decoded ones have no prototype: checked, then made plain). */
function comparable(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if ('metadata' in value) {
    const m = (value as { metadata: Metadata }).metadata;
    assert.equal(Object.getPrototypeOf(m), null, 'decoded metadata has a prototype');
    return { ...value, metadata: plain(m) };
  }
  if (Object.getPrototypeOf(value) === null) return plain(value as Metadata);
  return value;
}

function check(input: Uint8Array): void {
  const prototypeBefore = Object.getOwnPropertyNames(Object.prototype).join();
  for (const limits of LIMIT_SETS) {
    for (const codec of CODECS) {
      const what = `${codec.name} decoder (limits ${limits.maxMetadataBytes}/${limits.maxMetadataEntries})`;
      let value: unknown;
      const thrown = withinBudget(() => onlyThrows(() => (value = codec.decode(input, limits)), PAYLOAD_ERRORS, what), `${what} on ${input.length} bytes`);
      if (thrown !== undefined) continue;
      const again = codec.reencode(value as never, limits);
      if (again === undefined) continue;
      assert.deepEqual(comparable(codec.decode(again, limits)), comparable(value), `${what}: decode(encode(decode(x))) differs from decode(x)`);
    }
  }
  assert.equal(Object.getOwnPropertyNames(Object.prototype).join(), prototypeBefore, 'a payload decoder changed Object.prototype');
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined, 'a payload decoder polluted Object.prototype');
}

// ---------------------------------------------------------------- inputs

const u32Arb = fc.integer({ min: 0, max: 0xffff_ffff });
const textArb = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: 'binary', maxLength });
const statusArb = fc.constantFrom(...Object.values(Status));
const methodArb = textArb(40).filter((m) => utf8(m).length >= 1 && utf8(m).length <= 255);
const keyArb = fc.oneof(fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{0,20}$/), fc.constantFrom('constructor', 'prototype', 'tostring', '__proto__', 'polluted'));
const metadataArb: fc.Arbitrary<Metadata> = fc.dictionary(keyArb.filter((k) => k !== '__proto__'), fc.oneof(textArb(40), fc.uint8Array({ maxLength: 60 })), {
  maxKeys: 5,
  noNullPrototype: true,
});
const LENIENT: MetadataLimits = { maxMetadataBytes: 1_000_000, maxMetadataEntries: 255 };

/** A metadata block written byte by byte, bypassing encodeMetadata's checks (as an attacker would). */
const rawMetadataBlockArb = fc
  .array(fc.tuple(keyArb, fc.integer({ min: 0, max: 3 }), fc.uint8Array({ maxLength: 20 }), fc.boolean()), { maxLength: 6 })
  .chain((entries) =>
    fc.integer({ min: 0, max: 255 }).map((lyingCount) => {
      const parts: number[] = [entries.length === 0 ? lyingCount : entries.length];
      for (const [key, kind, value, lie] of entries) {
        const k = Buffer.from(key, 'latin1');
        const length = lie ? 0xffff : value.length;
        parts.push(k.length, ...k, kind, length >>> 8, length & 0xff, ...value);
      }
      return Uint8Array.from(parts);
    }),
  );

const helloArb: fc.Arbitrary<Uint8Array> = fc
  .record(
    {
      versionMin: fc.integer({ min: 0, max: 3 }),
      versionMax: fc.integer({ min: 0, max: 3 }),
      maxFrameBytes: fc.integer({ min: 16 * 1024, max: 16 * 1024 * 1024 }),
      window: fc.integer({ min: 0, max: MAX_WINDOW }),
      count: u32Arb,
      nodeName: textArb(30),
    },
    { noNullPrototype: true },
  )
  .map((h) =>
    encodeHello({
      versionMin: Math.min(h.versionMin, h.versionMax),
      versionMax: Math.max(h.versionMin, h.versionMax),
      settings: {
        maxFrameBytes: h.maxFrameBytes,
        initialStreamWindow: h.window,
        initialMessageWindow: Math.max(1, h.window),
        connectionWindow: h.window,
        maxConcurrentStreams: h.count,
        maxMessageBytes: h.count,
        features: h.count,
        nodeName: h.nodeName,
        label: '',
      },
    }),
  );

const validPayloadArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc
    .tuple(u32Arb, fc.integer({ min: 0, max: MAX_WINDOW }), methodArb, metadataArb)
    .map(([deadline, window, method, metadata]) => encodeOpen(deadline, window, utf8(method), encodeMetadata(metadata, LENIENT))),
  fc.tuple(statusArb, textArb(60), metadataArb).map(([s, m, md]) => encodeEnd(s, m, encodeMetadata(md, LENIENT))),
  fc.tuple(statusArb, textArb(60)).map(([s, m]) => encodeReset(s, m)),
  fc.tuple(u32Arb, u32Arb, textArb(60)).map(([l, c, m]) => encodeGoaway(l, c, m)),
  helloArb,
  metadataArb.map((m) => encodeMetadata(m, LENIENT)),
  // an OPEN whose metadata block is hand-written
  fc.tuple(methodArb, rawMetadataBlockArb).map(([method, block]) => concat([encodeOpen(0, 0, utf8(method)).subarray(0, -1), block])),
);

export const payloadsTarget: FuzzTarget = {
  name: 'payloads',
  inputs: fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    // past the HELLO magic, so decodeHello reaches its settings
    fc.uint8Array({ maxLength: 300 }).map((b) => concat([HELLO_MAGIC, b])),
    rawMetadataBlockArb,
    maybeMutated(validPayloadArb),
  ),
  check,
  describe: (input) => `a payload of ${input.length} bytes into every payload decoder: ${hex(input)}`,
};
