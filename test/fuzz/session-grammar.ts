/**
 * The grammar of the `session` fuzz target's inputs: what a hostile peer sends a session, mostly valid so that it gets
 * past the decoder into the session's state machines. A HELLO (with windows and limits from a small set), then up
 * to 30 frames of every type with stream ids chosen from what is open (the peer's streams, and the session's own
 * calls), the next free id, a reused one, the wrong parity or any; flags, lengths, statuses, credits and payloads
 * (msgpack of real values, random bytes, hand-written metadata blocks) drawn around their boundaries; then, half of
 * the time, byte mutations of the whole stream, and sometimes a cut.
 *
 * Corpus form: byte 0 = the session's role (bit 0: 0 acceptor, 1 dialer; bit 1: tight budgets), byte 1 = how many echo calls the session makes
 * to the peer at start (0-2), then the bytes the peer sends.
 */
import fc from 'fast-check';

import { msgpackCodec } from '../../src/rpc/codec.js';
import { utf8 } from '../../src/wire/bytes.js';
import { Flag, FrameType, MAX_WINDOW } from '../../src/wire/constants.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { encodeMetadata } from '../../src/wire/metadata.js';
import { encodeCredit, encodeGoaway, encodeOpen, encodePing } from '../../src/wire/payloads.js';
import { helloFrame, RAW_HELLO_SETTINGS } from '../helpers.js';
import { concat, mutate, mutationsArb, sometimes } from './harness.js';

export type Role = 'acceptor' | 'dialer';

export interface SessionInput {
  role: Role;
  /** Echo calls the session makes to the peer before the peer's bytes arrive. */
  calls: number;
  /**
   * The session runs with tiny memory budgets, a reset budget of 2 and async handlers, so that refusals and resets
   * happen (and must stay typed) under any sequence the peer sends.
   */
  tight: boolean;
  /** What the peer sends. */
  bytes: Uint8Array;
}

export function encodeSessionInput(input: SessionInput): Uint8Array {
  return concat([Uint8Array.of((input.role === 'dialer' ? 1 : 0) | (input.tight ? 2 : 0), input.calls), input.bytes]);
}

export function decodeSessionInput(corpus: Uint8Array): SessionInput {
  const flags = corpus[0] ?? 0;
  return { role: flags & 1 ? 'dialer' : 'acceptor', tight: (flags & 2) !== 0, calls: Math.min(corpus[1] ?? 0, 2), bytes: corpus.subarray(2) };
}

/** The methods of test/fixtures/echo-service.ts, and some that do not exist. */
const METHODS = ['test.Echo/echo', 'test.Echo/echo', 'test.Echo/hang', 'test.Echo/gated', 'test.Echo/nope', 'x', 'test.Echo/echo\u0000'];

// ---------------------------------------------------------------- abstract frames

/** Which stream a frame names; resolved against what the peer has opened so far (see `resolve`). */
type IdChoice =
  | { t: 'next' }
  | { t: 'open'; index: number }
  | { t: 'ours'; index: number }
  | { t: 'wrongParity' }
  | { t: 'zero' }
  | { t: 'any'; id: number };

type Op =
  | { t: 'open'; id: IdChoice; method: string; deadlineMs: number; window: number; metadata: Uint8Array; request: Uint8Array | null; requestFlags: number }
  | { t: 'data'; id: IdChoice; flags: number; payload: Uint8Array }
  | { t: 'end'; id: IdChoice; status: number; message: string; metadata: Uint8Array }
  | { t: 'reset'; id: IdChoice; flags: number; status: number; message: string }
  | { t: 'credit'; id: IdChoice; flags: number; increment: number }
  | { t: 'ping'; flags: number; opaque: bigint }
  | { t: 'goaway'; lastStreamId: number; code: number; message: string }
  | { t: 'hello' }
  | { t: 'other'; type: number; flags: number; id: number; payload: Uint8Array }
  | { t: 'bytes'; bytes: Uint8Array };

const record = <T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> => fc.record(model, { noNullPrototype: true });
const u32Arb = fc.integer({ min: 0, max: 0xffff_ffff });
const indexArb = fc.nat(7);

function idArb(forOpen: boolean): fc.Arbitrary<IdChoice> {
  return fc.oneof(
    { weight: forOpen ? 12 : 1, arbitrary: fc.constant({ t: 'next' as const }) },
    { weight: forOpen ? 1 : 20, arbitrary: record({ t: fc.constant('open' as const), index: indexArb }) },
    { weight: forOpen ? 0 : 6, arbitrary: record({ t: fc.constant('ours' as const), index: fc.nat(1) }) },
    { weight: 1, arbitrary: fc.constant({ t: 'wrongParity' as const }) },
    { weight: forOpen ? 0 : 1, arbitrary: fc.constant({ t: 'zero' as const }) },
    { weight: forOpen ? 1 : 2, arbitrary: record({ t: fc.constant('any' as const), id: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 0x7fff_ffff })) }) },
  );
}

const statusArb = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 16 }) }, { weight: 1, arbitrary: fc.integer({ min: 17, max: 255 }) });
const textArb = fc.oneof({ weight: 4, arbitrary: fc.string({ maxLength: 12 }) }, { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) });

/** Small values of every kind the msgpack codec carries. */
const valueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, 0, 'x', true),
  fc.string({ maxLength: 20 }),
  fc.uint8Array({ maxLength: 64 }),
  fc.array(fc.integer(), { maxLength: 5 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.oneof(fc.integer(), fc.string({ maxLength: 5 })), { maxKeys: 4 }),
);

/** A message's bytes: msgpack of a value (the common case), random bytes, or nothing. */
const messageArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 6, arbitrary: valueArb.map((v) => Uint8Array.from(msgpackCodec.encode(v))) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.constant(new Uint8Array(0)) },
);

/** A metadata block: none, a valid one, or one written byte by byte (bad keys, kinds, lengths, counts). */
const metadataBlockArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 6, arbitrary: fc.constant(Uint8Array.of(0)) },
  {
    weight: 2,
    arbitrary: fc
      .dictionary(fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/), fc.oneof(fc.string({ maxLength: 10 }), fc.uint8Array({ maxLength: 10 })), { maxKeys: 3, noNullPrototype: true })
      .map((m) => encodeMetadata(m, { maxMetadataBytes: 1_000_000, maxMetadataEntries: 255 })),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 0, max: 255 }), fc.array(fc.tuple(fc.constantFrom('k', '__proto__', 'A', ''), fc.integer({ min: 0, max: 2 }), fc.constantFrom(0, 1, 0xffff)), { maxLength: 3 }))
      .map(([count, entries]) => Uint8Array.from([count, ...entries.flatMap(([k, kind, n]) => [k.length, ...Buffer.from(k), kind, n >>> 8, n & 0xff, ...(n < 16 ? new Array<number>(n).fill(0x61) : [])])])),
  },
);

/** DATA flags: the meaningful combinations, sometimes with unknown bits. */
const dataFlagsArb = fc.oneof(
  fc.constantFrom(0, Flag.MESSAGE_END, Flag.MESSAGE_END | Flag.END_STREAM, Flag.END_STREAM),
  fc.integer({ min: 0, max: 255 }),
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: record<Extract<Op, { t: 'open' }>>({
      t: fc.constant('open' as const),
      id: idArb(true),
      method: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...METHODS) }, { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }) }),
      deadlineMs: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(1, 600_000) }, { weight: 1, arbitrary: u32Arb }),
      window: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.constantFrom(1, 16, 65_536, MAX_WINDOW) }, { weight: 1, arbitrary: u32Arb }),
      metadata: metadataBlockArb,
      request: fc.option(messageArb, { freq: 5 }),
      requestFlags: fc.oneof({ weight: 6, arbitrary: fc.constant(Flag.MESSAGE_END | Flag.END_STREAM) }, { weight: 2, arbitrary: dataFlagsArb }),
    }),
  },
  { weight: 5, arbitrary: record({ t: fc.constant('data' as const), id: idArb(false), flags: dataFlagsArb, payload: messageArb }) },
  { weight: 2, arbitrary: record({ t: fc.constant('end' as const), id: idArb(false), status: statusArb, message: textArb, metadata: metadataBlockArb }) },
  { weight: 2, arbitrary: record({ t: fc.constant('reset' as const), id: idArb(false), flags: fc.constantFrom(0, Flag.REFUSED, 0xff), status: statusArb, message: textArb }) },
  {
    weight: 3,
    arbitrary: record({
      t: fc.constant('credit' as const),
      id: fc.oneof({ weight: 2, arbitrary: fc.constant({ t: 'zero' as const }) }, { weight: 3, arbitrary: idArb(false) }),
      flags: fc.constantFrom(0, 0, Flag.MESSAGES),
      increment: fc.oneof(fc.constantFrom(0, 1, 1024, 65_536, MAX_WINDOW, 0x8000_0000, 0xffff_ffff), u32Arb),
    }),
  },
  { weight: 2, arbitrary: record({ t: fc.constant('ping' as const), flags: fc.constantFrom(0, 0, Flag.ACK), opaque: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }) },
  { weight: 1, arbitrary: record({ t: fc.constant('goaway' as const), lastStreamId: fc.oneof(fc.nat(40), u32Arb), code: fc.oneof(fc.integer({ min: 0, max: 8 }), u32Arb), message: textArb }) },
  { weight: 1, arbitrary: fc.constant({ t: 'hello' as const }) },
  {
    weight: 1,
    arbitrary: record({
      t: fc.constant('other' as const),
      type: fc.oneof(fc.integer({ min: 0x80, max: 0xff }), fc.integer({ min: 0, max: 0x7f })),
      flags: fc.integer({ min: 0, max: 255 }),
      id: fc.nat(5),
      payload: fc.uint8Array({ maxLength: 20 }),
    }),
  },
  { weight: 1, arbitrary: record({ t: fc.constant('bytes' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }) }) },
);

/** The peer's HELLO: the raw peer's defaults, or windows and limits at their edges. */
const helloArb: fc.Arbitrary<Uint8Array> = fc
  .record(
    {
      initialStreamWindow: fc.constantFrom(RAW_HELLO_SETTINGS.initialStreamWindow, 0, 16, 65_536),
      connectionWindow: fc.constantFrom(RAW_HELLO_SETTINGS.connectionWindow, 0, 100),
      initialMessageWindow: fc.constantFrom(RAW_HELLO_SETTINGS.initialMessageWindow, 1),
      maxConcurrentStreams: fc.constantFrom(RAW_HELLO_SETTINGS.maxConcurrentStreams, 0, 1),
      maxMessageBytes: fc.constantFrom(RAW_HELLO_SETTINGS.maxMessageBytes, 0, 10),
    },
    { noNullPrototype: true, requiredKeys: [] },
  )
  .map((settings) => helloFrame(settings));

// ---------------------------------------------------------------- from abstract to bytes

function frame(type: number, flags: number, streamId: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  return encodeFrame({ type, flags, streamId, payload });
}

/** The bytes of `ops`, ids resolved in order: the peer's next id, the ids it opened, the session's own calls. */
function resolve(role: Role, calls: number, ops: readonly Op[]): Uint8Array[] {
  // the dialer's streams are odd, the acceptor's even; the peer is the session's other side
  const peerFirst = role === 'acceptor' ? 1 : 2;
  const ours = Array.from({ length: calls }, (_, i) => (role === 'dialer' ? 1 : 2) + 2 * i);
  const opened: number[] = [];
  let next = peerFirst;
  const idOf = (choice: IdChoice): number => {
    switch (choice.t) {
      case 'next': {
        const id = next;
        next += 2;
        opened.push(id);
        return id;
      }
      // with nothing open yet, a frame for an open stream goes to one of the session's calls, or to the next id
      case 'open':
        if (opened.length > 0) return opened[choice.index % opened.length]!;
        return ours.length > 0 ? ours[choice.index % ours.length]! : next;
      case 'ours':
        if (ours.length > 0) return ours[choice.index % ours.length]!;
        return opened.length > 0 ? opened[choice.index % opened.length]! : next;
      case 'wrongParity':
        return next + 1;
      case 'zero':
        return 0;
      case 'any':
        return choice.id;
    }
  };
  return ops.map((op) => {
    switch (op.t) {
      case 'open': {
        const id = idOf(op.id);
        const open = frame(FrameType.OPEN, 0, id, openPayload(op));
        return op.request === null ? open : concat([open, frame(FrameType.DATA, op.requestFlags, id, op.request)]);
      }
      case 'data':
        return frame(FrameType.DATA, op.flags, idOf(op.id), op.payload);
      case 'end':
        return frame(FrameType.END, 0, idOf(op.id), concat([statusPayload(op.status, op.message), op.metadata]));
      case 'reset':
        return frame(FrameType.RESET, op.flags, idOf(op.id), statusPayload(op.status, op.message));
      case 'credit':
        return frame(FrameType.CREDIT, op.flags, idOf(op.id), encodeCredit(op.increment));
      case 'ping':
        return frame(FrameType.PING, op.flags, 0, encodePing(op.opaque));
      case 'goaway':
        return frame(FrameType.GOAWAY, 0, 0, encodeGoaway(op.lastStreamId, op.code, op.message));
      case 'hello':
        return helloFrame();
      case 'other':
        return frame(op.type, op.flags, op.id, op.payload);
      case 'bytes':
        return op.bytes;
    }
  });
}

/** Status u8 (any byte: the grammar also draws unknown ones), message length u16, message: END and RESET start so. */
function statusPayload(status: number, message: string): Uint8Array {
  const text = utf8(message);
  return Uint8Array.from([status, text.length >>> 8, text.length & 0xff, ...text]);
}

function openPayload(op: Extract<Op, { t: 'open' }>): Uint8Array {
  // a method cut at 255 bytes may end inside a character: a malformed OPEN, as a peer may send
  const payload = encodeOpen(op.deadlineMs, 0, utf8(op.method).subarray(0, 255), op.metadata);
  // encodeOpen refuses a window past 2^31-1; a peer may still send one
  new DataView(payload.buffer, payload.byteOffset).setUint32(4, op.window);
  return payload;
}

/** A valid call to the echo service: how most peers start. */
const callArb: fc.Arbitrary<Op> = record<Extract<Op, { t: 'open' }>>({
  t: fc.constant('open' as const),
  id: fc.constant({ t: 'next' as const }),
  method: fc.constantFrom('test.Echo/echo', 'test.Echo/echo', 'test.Echo/hang'),
  deadlineMs: fc.constant(0),
  window: fc.constant(0),
  metadata: fc.constant(Uint8Array.of(0)),
  request: fc.option(messageArb, { freq: 8 }),
  requestFlags: fc.constantFrom(Flag.MESSAGE_END | Flag.END_STREAM, Flag.MESSAGE_END, 0),
});

export const sessionInputArb: fc.Arbitrary<SessionInput> = fc
  .record(
    {
      role: fc.constantFrom<Role>('acceptor', 'dialer'),
      calls: fc.integer({ min: 0, max: 2 }),
      tight: fc.boolean(),
      hello: helloArb,
      first: fc.array(callArb, { maxLength: 3 }),
      ops: fc.array(opArb, { minLength: 1, maxLength: 30 }),
      // mutations mostly after the HELLO: a broken HELLO ends the session before anything else is read
      mutations: sometimes(fc.tuple(mutationsArb, fc.boolean()), 1, 3),
      cut: sometimes(fc.nat(), 1, 8),
    },
    { noNullPrototype: true },
  )
  .map(({ role, calls, tight, hello, first, ops, mutations, cut }) => {
    let frames = concat(resolve(role, calls, [...first, ...ops]));
    let start = hello;
    if (mutations !== null) {
      const [list, hitHello] = mutations;
      if (hitHello && list.length === 1) start = mutate(hello, list);
      else frames = mutate(frames, list);
    }
    let bytes = concat([start, frames]);
    if (cut !== null) bytes = bytes.subarray(0, cut % (bytes.length + 1));
    return { role, calls, tight, bytes };
  });
