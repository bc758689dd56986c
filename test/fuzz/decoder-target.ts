/**
 * Fuzz target `decoder` (reliability.md T-F1, T-F6): a byte stream into FrameDecoder. Properties, for each of four
 * decoder set-ups (HELLO expected first or not; the default and the smallest frame limit; straddling DATA payloads of
 * odd streams taken as pieces, each a view of the chunk pushed, put back together by the collector):
 * - only ProtocolError is thrown, with a documented code, and each decode takes < 50 ms;
 * - the stream decodes the same (the same frames, then the same error or none) whole, one byte at a time and split at
 *   random boundaries;
 * - a stream that decodes without error re-encodes bit-exact (extension frames, which are skipped, aside).
 * The corpus form is the byte stream itself.
 */
import assert from 'node:assert/strict';

import fc from 'fast-check';

import {
  FIRST_EXTENSION_FRAME_TYPE,
  FRAME_HEADER_BYTES,
  FrameType,
  MAX_STREAM_ID,
  DEFAULT_LIMITS,
} from '../../src/wire/constants.js';
import { FrameDecoder, type DataPieces } from '../../src/wire/decoder.js';
import { ProtocolError, ProtocolErrorCode } from '../../src/wire/errors.js';
import { encodeFrame, type Frame } from '../../src/wire/frame.js';
import { readU32 } from '../../src/wire/bytes.js';
import { byteArb, knownFrameArb as knownFrameArbOf, pseudoFramesArb, record } from '../fixtures/frame-arbitraries.js';
import { byteByByte, concat, describeThrown, hex, maybeMutated, randomSlices, withinBudget, type FuzzTarget } from './harness.js';

const PROTOCOL_CODES = new Set<string>(Object.values(ProtocolErrorCode));

interface DecoderSetup {
  expectHelloFirst: boolean;
  maxFrameBytes: number;
  /** Take straddling DATA payloads of odd streams as pieces (the session's bulk path), put back together here. */
  pieces?: boolean;
}

const SETUPS: readonly DecoderSetup[] = [
  { expectHelloFirst: false, maxFrameBytes: DEFAULT_LIMITS.maxFrameBytes },
  { expectHelloFirst: true, maxFrameBytes: DEFAULT_LIMITS.maxFrameBytes },
  { expectHelloFirst: false, maxFrameBytes: 16 },
  { expectHelloFirst: false, maxFrameBytes: DEFAULT_LIMITS.maxFrameBytes, pieces: true },
];

interface Decoded {
  frames: Frame[];
  /** `code: message` of the ProtocolError that stopped the decoder, if one did. */
  error: string | undefined;
  atBoundary: boolean;
}

/** Feeds `chunks` to a fresh decoder; fails the check on anything thrown but a ProtocolError with a documented code. */
function decodeChunks(chunks: readonly Uint8Array[], setup: DecoderSetup): Decoded {
  const frames: Frame[] = [];
  let pushed: Uint8Array | undefined;
  let partial: { flags: number; streamId: number; parts: Uint8Array[] } | undefined;
  const pieces: DataPieces = {
    startData(flags, streamId, length) {
      assert.ok(length > 0 && partial === undefined, 'startData: a DATA frame with a payload, between frames');
      if ((streamId & 1) === 0) return false;
      partial = { flags, streamId, parts: [] };
      return true;
    },
    dataPiece(piece, last) {
      assert.ok(piece.length > 0 && piece.buffer === pushed!.buffer, 'a piece is a non-empty view of the chunk pushed');
      partial!.parts.push(piece.slice());
      if (last) {
        frames.push({ type: FrameType.DATA, flags: partial!.flags, streamId: partial!.streamId, payload: concat(partial!.parts) });
        partial = undefined;
      }
    },
  };
  const decoder = new FrameDecoder((type, flags, streamId, payload) => frames.push({ type, flags, streamId, payload: payload.slice() }), {
    ...setup,
    pieces: setup.pieces === true ? pieces : undefined,
  });
  try {
    for (const chunk of chunks) {
      pushed = chunk;
      decoder.push(chunk);
    }
  } catch (error) {
    if (!(error instanceof ProtocolError)) assert.fail(`FrameDecoder threw ${describeThrown(error)}; only ProtocolError may be thrown`);
    assert.ok(PROTOCOL_CODES.has(error.code), `FrameDecoder threw an undocumented code ${error.code}`);
    return { frames, error: error.message, atBoundary: false };
  }
  return { frames, error: undefined, atBoundary: decoder.atFrameBoundary };
}

/** The complete non-extension frames of `bytes` as they are written, walking the headers (for an input that decoded). */
function knownFrameBytes(bytes: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let at = 0; at + FRAME_HEADER_BYTES <= bytes.length; ) {
    const length = readU32(bytes, at + 6);
    const end = at + FRAME_HEADER_BYTES + length;
    if (bytes[at]! < FIRST_EXTENSION_FRAME_TYPE) parts.push(bytes.subarray(at, end));
    at = end;
  }
  return concat(parts);
}

function check(input: Uint8Array): void {
  for (const setup of SETUPS) {
    const what = `FrameDecoder(${JSON.stringify(setup)})`;
    const whole = withinBudget(() => decodeChunks([input], setup), `${what} on ${input.length} bytes`);
    const oneByOne = decodeChunks(byteByByte(input), setup);
    assert.deepEqual(oneByOne, whole, `${what}: one byte at a time decodes differently from the whole stream`);
    const sliced = decodeChunks(randomSlices(input), setup);
    assert.deepEqual(sliced, whole, `${what}: split at random boundaries decodes differently from the whole stream`);
    if (whole.error === undefined && whole.atBoundary) {
      assert.deepEqual(concat(whole.frames.map(encodeFrame)), knownFrameBytes(input), `${what}: decoded frames do not re-encode bit-exact`);
    }
  }
}

// ---------------------------------------------------------------- inputs

const payloadArb = fc.uint8Array({ maxLength: 300 });

/** Any known frame type with the shape the decoder requires of it, or an extension frame. */
const knownFrameArb: fc.Arbitrary<Frame> = fc.oneof(
  { arbitrary: knownFrameArbOf(payloadArb), weight: 5 }, // five kinds of known frame, one of extension
  {
    arbitrary: record({ type: fc.integer({ min: FIRST_EXTENSION_FRAME_TYPE, max: 0xff }), flags: byteArb, streamId: fc.integer({ min: 0, max: MAX_STREAM_ID }), payload: payloadArb }),
    weight: 1,
  },
);

/** A HELLO, then frames: what a gridwire peer sends. */
const validStreamArb = fc
  .tuple(payloadArb, fc.array(knownFrameArb, { maxLength: 6 }))
  .map(([hello, rest]) => concat([encodeFrame({ type: FrameType.HELLO, flags: 0, streamId: 0, payload: hello }), ...rest.map(encodeFrame)]));

/** A header declaring a length near a limit (or far past every limit), and fewer bytes than it declares. */
const lyingLengthArb = fc
  .tuple(byteArb, fc.constantFrom(16, 17, 4096, 65_536, 65_537, 0x7fff_ffff, 0xffff_ffff), fc.uint8Array({ maxLength: 40 }))
  .map(([type, length, tail]) => {
    const header = encodeFrame({ type, flags: 0, streamId: 0, payload: new Uint8Array(0) });
    new DataView(header.buffer).setUint32(6, length);
    return concat([header, tail]);
  });

export const decoderTarget: FuzzTarget = {
  name: 'decoder',
  inputs: fc.oneof(fc.uint8Array({ maxLength: 600 }), pseudoFramesArb, lyingLengthArb, maybeMutated(validStreamArb)),
  check,
  describe: (input) => `a byte stream of ${input.length} bytes into FrameDecoder: ${hex(input)}`,
};
