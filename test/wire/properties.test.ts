/**
 * Property tests for the wire layer (fast-check, fixed seed so a failure reproduces): frames and payloads
 * round-trip bit-exact, and hostile bytes only ever raise the documented error classes.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import fc from 'fast-check';

import { ByteReader, utf8, utf8Truncated } from '../../src/wire/bytes.js';
import {
  DEFAULT_LIMITS,
  FIRST_EXTENSION_FRAME_TYPE,
  FrameType,
  HELLO_MAGIC,
  MAX_MAX_FRAME_BYTES,
  MAX_STREAM_ID,
  MAX_WINDOW,
  METADATA_ENTRY_OVERHEAD,
  MIN_MAX_FRAME_BYTES,
  Status,
} from '../../src/wire/constants.js';
import { FrameDecoder } from '../../src/wire/decoder.js';
import { MalformedPayloadError, ProtocolError, ProtocolErrorCode } from '../../src/wire/errors.js';
import { encodeFrame, type Frame } from '../../src/wire/frame.js';
import { byteArb, knownFrameArb as knownFrameArbOf, pseudoFramesArb, record } from '../fixtures/frame-arbitraries.js';
import { decodeHello, encodeHello, NotGridwireError, type Hello } from '../../src/wire/hello.js';
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

const RUNS = { seed: 20261121, numRuns: 2000 } as const;
const LIMITS: MetadataLimits = { maxMetadataBytes: DEFAULT_LIMITS.maxMetadataBytes, maxMetadataEntries: DEFAULT_LIMITS.maxMetadataEntries };
const MAX_FRAME = DEFAULT_LIMITS.maxFrameBytes;
const PROTOCOL_CODES = new Set<string>(Object.values(ProtocolErrorCode));

// ---------------------------------------------------------------------------------------------------------------
// helpers

function concat(parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

/** Cuts `bytes` at the given points (taken modulo length+1), so any list of numbers is a valid chunking. */
function chunked(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of points) {
    out.push(bytes.subarray(from, p));
    from = p;
  }
  out.push(bytes.subarray(from));
  return out;
}

function decodeChunks(chunks: Uint8Array[], maxFrameBytes: number, expectHelloFirst = false): { frames: Frame[]; boundary: boolean } {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder((type, flags, streamId, payload) => frames.push({ type, flags, streamId, payload: payload.slice() }), {
    maxFrameBytes,
    expectHelloFirst,
  });
  for (const chunk of chunks) decoder.push(chunk);
  return { frames, boundary: decoder.atFrameBoundary };
}

type Mutation = { kind: 'flip'; at: number; mask: number } | { kind: 'insert'; at: number; byte: number } | { kind: 'delete'; at: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  record({ kind: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
  record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  record({ kind: fc.constant('delete' as const), at: fc.nat() }),
);
const mutationsArb = fc.array(mutationArb, { minLength: 1, maxLength: 4 });

function mutate(bytes: Uint8Array, mutations: Mutation[]): Uint8Array {
  const arr = Array.from(bytes);
  for (const m of mutations) {
    if (m.kind === 'flip') {
      if (arr.length > 0) arr[m.at % arr.length] = arr[m.at % arr.length]! ^ m.mask;
    } else if (m.kind === 'insert') {
      arr.splice(m.at % (arr.length + 1), 0, m.byte);
    } else if (arr.length > 0) {
      arr.splice(m.at % arr.length, 1);
    }
  }
  return Uint8Array.from(arr);
}

/** Runs `fn` and, if it throws, checks the error is one of `allowed`; rethrows anything else with its class name. */
function onlyThrows(fn: () => unknown, allowed: Array<abstract new (...args: never[]) => Error>): void {
  try {
    fn();
  } catch (err) {
    if (!allowed.some((cls) => err instanceof cls)) {
      assert.fail(`unexpected ${err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err)}`);
    }
  }
}

function plain(metadata: Metadata): Metadata {
  return { ...metadata };
}

// ---------------------------------------------------------------------------------------------------------------
// arbitraries

const u32Arb = fc.integer({ min: 0, max: 0xffff_ffff });
const payloadArb = fc.uint8Array({ maxLength: 4096 });
const knownFrameArb = knownFrameArbOf(payloadArb);

const extensionFrameArb: fc.Arbitrary<Frame> = record({
  type: fc.integer({ min: FIRST_EXTENSION_FRAME_TYPE, max: 0xff }),
  flags: byteArb,
  streamId: fc.integer({ min: 0, max: MAX_STREAM_ID }),
  payload: fc.uint8Array({ maxLength: 512 }),
});

/** Well-formed text, sometimes starting with U+FEFF (which a decoder must not strip as a byte-order mark). */
function textArb(maxLength: number): fc.Arbitrary<string> {
  return fc.tuple(fc.boolean(), fc.string({ unit: 'binary', maxLength })).map(([bom, s]) => (bom ? `\uFEFF${s}` : s));
}

const keyArb = fc.oneof(
  fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{0,63}$/),
  fc.constantFrom('constructor', 'prototype', 'tostring', 'valueof', 'hasownproperty', 'isprototypeof', 'polluted'),
);
const valueArb: fc.Arbitrary<string | Uint8Array> = fc.oneof(textArb(100), fc.uint8Array({ maxLength: 200 }));
const metadataArb: fc.Arbitrary<Metadata> = fc.dictionary(keyArb, valueArb, { maxKeys: 8, noNullPrototype: true });

const statusArb = fc.constantFrom(...Object.values(Status));
const methodArb = textArb(60).filter((m) => utf8(m).length >= 1 && utf8(m).length <= 255);

const helloArb: fc.Arbitrary<Hello> = fc
  .tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }))
  .chain(([a, b]) =>
    record({
      versionMin: fc.constant(Math.min(a, b)),
      versionMax: fc.constant(Math.max(a, b)),
      settings: record({
        maxFrameBytes: fc.integer({ min: MIN_MAX_FRAME_BYTES, max: MAX_MAX_FRAME_BYTES }),
        initialStreamWindow: fc.integer({ min: 0, max: MAX_WINDOW }),
        initialMessageWindow: fc.integer({ min: 1, max: MAX_WINDOW }),
        connectionWindow: fc.integer({ min: 0, max: MAX_WINDOW }),
        maxConcurrentStreams: u32Arb,
        maxMessageBytes: u32Arb,
        features: u32Arb,
        nodeName: textArb(63),
        label: textArb(63),
      }),
    }),
  );

const limitsArb: fc.Arbitrary<MetadataLimits> = fc.oneof(
  fc.constant(LIMITS),
  record({ maxMetadataBytes: fc.integer({ min: 0, max: 600 }), maxMetadataEntries: fc.integer({ min: 0, max: 6 }) }),
);

interface RawEntry {
  key: string;
  kind: number;
  value: Uint8Array;
}
/** A metadata block written byte by byte, bypassing encodeMetadata's checks (as an attacker would). */
function rawMetadataBlock(entries: RawEntry[]): Uint8Array {
  const parts: number[] = [entries.length];
  for (const e of entries) {
    const key = Buffer.from(e.key, 'latin1');
    parts.push(key.length, ...key, e.kind, e.value.length >>> 8, e.value.length & 0xff, ...e.value);
  }
  return Uint8Array.from(parts);
}

// ---------------------------------------------------------------------------------------------------------------

void describe('frames round-trip through FrameDecoder', () => {
  void test('T-F1 T-F6 any sequence of valid frames decodes bit-exact under random chunking and re-encodes to the same bytes', () => {
    fc.assert(
      fc.property(fc.array(knownFrameArb, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 12 }), (frames, cuts) => {
        const bytes = concat(frames.map(encodeFrame));
        const { frames: decoded, boundary } = decodeChunks(chunked(bytes, cuts), MAX_FRAME);
        assert.deepEqual(decoded, frames);
        assert.equal(boundary, true);
        assert.deepEqual(concat(decoded.map(encodeFrame)), bytes);
      }),
      RUNS,
    );
  });

  void test('extension frames interleaved anywhere are skipped and do not disturb the known frames', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(knownFrameArb, extensionFrameArb), { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (frames, cuts) => {
          const bytes = concat(frames.map(encodeFrame));
          const { frames: decoded, boundary } = decodeChunks(chunked(bytes, cuts), MAX_FRAME);
          assert.deepEqual(
            decoded,
            frames.filter((f) => f.type < FIRST_EXTENSION_FRAME_TYPE),
          );
          assert.equal(boundary, true);
        },
      ),
      RUNS,
    );
  });
});

void describe('payload codecs round-trip', () => {
  void test('OPEN: decodeOpen(encodeOpen(x)) equals x, metadata included', () => {
    fc.assert(
      fc.property(u32Arb, fc.integer({ min: 0, max: 0x7fff_ffff }), methodArb, metadataArb, (deadlineMs, window, method, metadata) => {
        const decoded = decodeOpen(encodeOpen(deadlineMs, window, utf8(method), encodeMetadata(metadata, LIMITS)), LIMITS);
        assert.equal(Object.getPrototypeOf(decoded.metadata), null);
        assert.deepEqual({ ...decoded, metadata: plain(decoded.metadata) }, { deadlineMs, window, method, metadata });
      }),
      RUNS,
    );
  });

  void test('OPEN: a window past 2^31-1 is refused on both sides', () => {
    assert.throws(() => encodeOpen(0, 0x8000_0000, utf8('a/b')), RangeError);
    const bytes = encodeOpen(0, 1, utf8('a/b'));
    bytes.set([0x80, 0, 0, 0], 4);
    assert.throws(() => decodeOpen(bytes, LIMITS), MalformedPayloadError);
  });

  void test('END: decodeEnd(encodeEnd(x)) equals x, trailer metadata included', () => {
    fc.assert(
      fc.property(statusArb, textArb(250), metadataArb, (status, message, metadata) => {
        const decoded = decodeEnd(encodeEnd(status, message, encodeMetadata(metadata, LIMITS)), LIMITS);
        assert.deepEqual({ ...decoded, metadata: plain(decoded.metadata) }, { status, message, metadata });
      }),
      RUNS,
    );
  });

  void test('RESET: decodeReset(encodeReset(x)) equals x', () => {
    fc.assert(
      fc.property(statusArb, textArb(250), (status, message) => {
        assert.deepEqual(decodeReset(encodeReset(status, message)), { status, message });
      }),
      RUNS,
    );
  });

  void test('GOAWAY: decodeGoaway(encodeGoaway(x)) equals x', () => {
    fc.assert(
      fc.property(u32Arb, u32Arb, textArb(250), (lastStreamId, code, message) => {
        assert.deepEqual(decodeGoaway(encodeGoaway(lastStreamId, code, message)), { lastStreamId, code, message });
      }),
      RUNS,
    );
  });

  void test('CREDIT: decodeCredit(encodeCredit(n)) equals n for every u32', () => {
    fc.assert(
      fc.property(u32Arb, (n) => {
        assert.equal(decodeCredit(encodeCredit(n)), n);
      }),
      RUNS,
    );
  });

  void test('PING: decodePing(encodePing(n)) equals n for every u64, also from an unaligned view', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.nat(7), (n, shift) => {
        const bytes = encodePing(n);
        assert.equal(decodePing(bytes), n);
        const padded = new Uint8Array(shift + 8);
        padded.set(bytes, shift);
        assert.equal(decodePing(padded.subarray(shift)), n);
      }),
      RUNS,
    );
  });

  void test('HELLO: decodeHello(encodeHello(x)) equals x', () => {
    fc.assert(
      fc.property(helloArb, (hello) => {
        assert.deepEqual(decodeHello(encodeHello(hello)), hello);
      }),
      RUNS,
    );
  });

  void test('metadata: decodeMetadata(encodeMetadata(m)) equals m and consumes the whole block', () => {
    fc.assert(
      fc.property(metadataArb, (metadata) => {
        const reader = new ByteReader(encodeMetadata(metadata, LIMITS));
        const decoded = decodeMetadata(reader, LIMITS);
        assert.equal(reader.remaining, 0);
        assert.equal(Object.getPrototypeOf(decoded), null);
        assert.deepEqual(plain(decoded), metadata);
      }),
      RUNS,
    );
  });

  void test('keeps a leading U+FEFF in every string field instead of stripping it as a byte-order mark', () => {
    const bom = '\uFEFFx';
    assert.equal(decodeEnd(encodeEnd(Status.OK, bom), LIMITS).message, bom);
    assert.equal(decodeReset(encodeReset(Status.CANCELLED, bom)).message, bom);
    assert.equal(decodeGoaway(encodeGoaway(0, 0, bom)).message, bom);
    assert.equal(decodeOpen(encodeOpen(0, 0, utf8(bom)), LIMITS).method, bom);
    assert.equal(decodeOpen(encodeOpen(0, 0, utf8('m'), encodeMetadata({ k: bom }, LIMITS)), LIMITS).metadata['k'], bom);
  });
});

void describe('hostile bytes raise only the documented errors', () => {
  function feedExpectingProtocolErrors(bytes: Uint8Array, cuts: number[], expectHelloFirst: boolean, maxFrameBytes: number): void {
    try {
      decodeChunks(chunked(bytes, cuts), maxFrameBytes, expectHelloFirst);
    } catch (err) {
      if (!(err instanceof ProtocolError)) assert.fail(`unexpected ${err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err)}`);
      assert.ok(PROTOCOL_CODES.has(err.code), `unknown code ${err.code}`);
    }
  }

  void test('T-F1 FrameDecoder throws only ProtocolError on random bytes and random headers, with or without expectHelloFirst', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 600 }), pseudoFramesArb),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.boolean(),
        fc.constantFrom(0, 16, 1024, MAX_FRAME),
        (bytes, cuts, expectHelloFirst, maxFrameBytes) => feedExpectingProtocolErrors(bytes, cuts, expectHelloFirst, maxFrameBytes),
      ),
      RUNS,
    );
  });

  void test('T-F1 FrameDecoder throws only ProtocolError on valid frame streams with flipped, inserted or deleted bytes', () => {
    const streamArb = fc
      .tuple(knownFrameArb, fc.array(fc.oneof(knownFrameArb, extensionFrameArb), { maxLength: 4 }))
      .map(([first, rest]) => concat([encodeFrame({ ...first, type: FrameType.HELLO, streamId: 0 }), ...rest.map(encodeFrame)]));
    fc.assert(
      fc.property(streamArb, mutationsArb, fc.array(fc.nat(), { maxLength: 8 }), fc.boolean(), (bytes, mutations, cuts, expectHelloFirst) =>
        feedExpectingProtocolErrors(mutate(bytes, mutations), cuts, expectHelloFirst, MAX_FRAME),
      ),
      RUNS,
    );
  });

  const payloadErrors = [MalformedPayloadError, MetadataLimitError];

  /** Valid encodings of every payload type, tagged with the decoder for it. */
  const validPayloadArb: fc.Arbitrary<[string, Uint8Array]> = fc.oneof(
    fc.tuple(u32Arb, fc.integer({ min: 0, max: 0x7fff_ffff }), methodArb, metadataArb).map(([d, w, m, md]): [string, Uint8Array] => ['open', encodeOpen(d, w, utf8(m), encodeMetadata(md, LIMITS))]),
    fc.tuple(statusArb, textArb(40), metadataArb).map(([s, m, md]): [string, Uint8Array] => ['end', encodeEnd(s, m, encodeMetadata(md, LIMITS))]),
    fc.tuple(statusArb, textArb(40)).map(([s, m]): [string, Uint8Array] => ['reset', encodeReset(s, m)]),
    fc.tuple(u32Arb, u32Arb, textArb(40)).map(([l, c, m]): [string, Uint8Array] => ['goaway', encodeGoaway(l, c, m)]),
    helloArb.map((h): [string, Uint8Array] => ['hello', encodeHello(h)]),
  );

  function decodeAs(kind: string, payload: Uint8Array, limits: MetadataLimits): unknown {
    switch (kind) {
      case 'open':
        return decodeOpen(payload, limits);
      case 'end':
        return decodeEnd(payload, limits);
      case 'reset':
        return decodeReset(payload);
      case 'goaway':
        return decodeGoaway(payload);
      default:
        return decodeHello(payload);
    }
  }

  const kindArb = fc.constantFrom('open', 'end', 'reset', 'goaway', 'hello');
  const randomPayloadArb = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    // past the HELLO magic, so decodeHello reaches its settings
    fc.uint8Array({ maxLength: 300 }).map((b) => concat([HELLO_MAGIC, b])),
  );

  void test('T-F1 payload decoders throw only MalformedPayloadError or MetadataLimitError on random bytes', () => {
    fc.assert(
      fc.property(kindArb, randomPayloadArb, limitsArb, (kind, payload, limits) => {
        onlyThrows(() => decodeAs(kind, payload, limits), payloadErrors);
      }),
      RUNS,
    );
  });

  void test('T-F1 payload decoders throw only MalformedPayloadError or MetadataLimitError on mutated valid payloads', () => {
    fc.assert(
      fc.property(validPayloadArb, kindArb, mutationsArb, limitsArb, ([kind, valid], otherKind, mutations, limits) => {
        const mutated = mutate(valid, mutations);
        onlyThrows(() => decodeAs(kind, mutated, limits), payloadErrors);
        // and each type's bytes fed to another type's decoder
        onlyThrows(() => decodeAs(otherKind, valid, limits), payloadErrors);
      }),
      RUNS,
    );
  });

  void test('T-F1 decodeHello refuses anything without the magic as NotGridwireError (a MalformedPayloadError)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (payload) => {
        fc.pre(!HELLO_MAGIC.every((b, i) => payload[i] === b));
        assert.throws(() => decodeHello(payload), (err: unknown) => err instanceof NotGridwireError && err instanceof MalformedPayloadError);
      }),
      RUNS,
    );
  });
});

void describe('metadata is safe against prototype pollution', () => {
  const dangerousKeys = ['__proto__', 'constructor', 'prototype', '__definegetter__', 'tostring', 'hasownproperty', 'polluted', 'a', 'b'];
  const rawEntryArb: fc.Arbitrary<RawEntry> = record({
    key: fc.constantFrom(...dangerousKeys),
    kind: fc.constantFrom(0, 1),
    value: fc.constantFrom('x', 'polluted', '{"polluted":true}').map((s) => Uint8Array.from(Buffer.from(s))),
  });

  void test('no decoded block adds, changes or shadows anything on Object.prototype', () => {
    const before = Object.getOwnPropertyNames(Object.prototype).sort();
    fc.assert(
      fc.property(fc.array(rawEntryArb, { minLength: 1, maxLength: 6 }), (entries) => {
        const block = rawMetadataBlock(entries);
        let decoded: Metadata | undefined;
        try {
          decoded = decodeMetadata(new ByteReader(block), LIMITS);
        } catch (err) {
          assert.ok(err instanceof MalformedPayloadError, String(err));
        }
        assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), before);
        assert.equal((({}) as Record<string, unknown>)['polluted'], undefined);
        if (entries.some((e) => e.key.startsWith('_'))) assert.equal(decoded, undefined, 'a key starting with _ was accepted');
        if (decoded !== undefined) {
          assert.equal(Object.getPrototypeOf(decoded), null);
          assert.deepEqual(Object.keys(decoded), [...new Set(entries.map((e) => e.key))]);
        }
      }),
      RUNS,
    );
  });

  void test('refuses a metadata key "__proto__" as malformed, inside OPEN too', () => {
    const block = rawMetadataBlock([{ key: '__proto__', kind: 0, value: Uint8Array.from(Buffer.from('{}')) }]);
    assert.throws(() => decodeMetadata(new ByteReader(block), LIMITS), MalformedPayloadError);
    const open = concat([encodeOpen(0, 0, utf8('m')).subarray(0, -1), block]);
    assert.throws(() => decodeOpen(open, LIMITS), MalformedPayloadError);
    assert.equal(Object.getPrototypeOf({}), Object.prototype);
  });

  void test('accepts "constructor" as an ordinary key on a prototype-less object', () => {
    const decoded = decodeMetadata(new ByteReader(rawMetadataBlock([{ key: 'constructor', kind: 0, value: Uint8Array.of(0x78) }])), LIMITS);
    assert.equal(decoded['constructor'], 'x');
    assert.equal(Object.getPrototypeOf(decoded), null);
  });
});

void describe('metadata limits', () => {
  const lenient: MetadataLimits = { maxMetadataBytes: 1_000_000, maxMetadataEntries: 255 };

  void test('T-D7 a block over maxMetadataBytes or maxMetadataEntries throws MetadataLimitError on both ends, and only then', () => {
    fc.assert(
      fc.property(metadataArb, limitsArb, (metadata, limits) => {
        const block = encodeMetadata(metadata, lenient);
        const entries = Object.entries(metadata);
        const cost = entries.reduce(
          (n, [k, v]) => n + k.length + (typeof v === 'string' ? utf8(v).length : v.length) + METADATA_ENTRY_OVERHEAD,
          0,
        );
        const over = entries.length > 0 && (entries.length > limits.maxMetadataEntries || cost > limits.maxMetadataBytes);
        if (over) {
          assert.throws(() => decodeMetadata(new ByteReader(block), limits), MetadataLimitError);
          assert.throws(() => encodeMetadata(metadata, limits), MetadataLimitError);
          assert.throws(() => decodeOpen(encodeOpen(1, 1, utf8('m'), block), limits), MetadataLimitError);
        } else {
          assert.deepEqual(plain(decodeMetadata(new ByteReader(block), limits)), metadata);
          assert.deepEqual(encodeMetadata(metadata, limits), block);
        }
      }),
      RUNS,
    );
  });
});

void describe('utf8Truncated', () => {
  // binary code points plus lone surrogates (which the encoder turns into U+FFFD)
  const anyTextArb = fc.string({ unit: fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), fc.constantFrom('\ud800', '\udfff')), maxLength: 80 });

  void test('never splits a character, respects maxBytes and cuts no more than one character short', () => {
    const fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    fc.assert(
      fc.property(anyTextArb, fc.integer({ min: 0, max: 330 }), (text, maxBytes) => {
        const full = utf8(text);
        const cut = utf8Truncated(text, maxBytes);
        assert.ok(cut.length <= maxBytes, `${cut.length} > ${maxBytes}`);
        fatal.decode(cut); // throws on a split character
        assert.deepEqual(cut, full.subarray(0, cut.length));
        if (full.length <= maxBytes) assert.equal(cut.length, full.length);
        else assert.ok(maxBytes - cut.length <= 3, `cut ${cut.length} of ${full.length} for max ${maxBytes}`);
      }),
      RUNS,
    );
  });

  void test('cuts a 4-byte character entirely rather than in half', () => {
    assert.deepEqual(utf8Truncated('a\u{1F600}', 4), utf8('a'));
    assert.deepEqual(utf8Truncated('a\u{1F600}', 5), utf8('a\u{1F600}'));
    assert.deepEqual(utf8Truncated('\u00e9\u00e9', 3), utf8('\u00e9'));
  });
});
