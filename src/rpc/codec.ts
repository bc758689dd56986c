/**
 * Message codecs, chosen per method: msgpack (msgpackr, the default), JSON, and raw bytes (no codec at all: the
 * handler gets and returns Uint8Array). Decoders never return views into connection buffers, so a value kept by the
 * application does not pin a socket chunk.
 *
 * What a codec cannot carry it refuses when the message is sent, never loses silently: msgpack carries Map, Set and
 * bigint exactly (below); JSON has no type for them, so the json codec throws a TypeError that says where one is.
 */
import { addExtension, Packr } from 'msgpackr';
import { Status } from '../wire/constants.js';
import {
  checkLimitOption,
  checkMsgpack,
  CodecLimitError,
  DEFAULT_MAX_DEPTH,
  DEFAULT_MAX_ELEMENTS,
  MAP_EXTENSION,
  MAX_MAX_DEPTH,
  type MsgpackLimits,
  SET_EXTENSION,
} from './msgpack-budget.js';
import { RpcError } from './rpc-error.js';

export interface Codec {
  readonly name: string;
  encode(value: unknown): Uint8Array;
  /** `bytes` is only valid during the call. */
  decode(bytes: Uint8Array): unknown;
}

export type CodecName = 'msgpack' | 'json' | 'raw';

// Plain MessagePack (no msgpackr records or structured-clone extensions) so that any msgpack peer can talk to us: a
// value without a Map, Set or bigint is written exactly as before.
//
// The three JavaScript types MessagePack has no type for round-trip exactly:
// - bigint: an int64/uint64 within 64 bits (msgpackr never writes a number as one, so every int64 read back is a
//   bigint, and a number stays a number), msgpackr's bigint extension (0x42) beyond.
// - Set: msgpackr's own structured-clone encoding, extension 0x73 and then an array of its items.
// - Map: extension 0x6d ('m') and then an array of its keys and values, alternating. msgpackr always writes a Map as
//   a plain map, which decodes as a plain object (keys turned into strings), so encode() first swaps each Map and Set
//   for a private wrapper that the extensions below write. Finding them costs one walk of the plain objects and
//   arrays of a message (about a tenth of msgpackr's own encoding time); raw bytes and strings are not walked.
// msgpackr keeps extensions process-wide: importing gridwire registers these two types for every msgpackr user of the
// process (0x73 decodes as msgpackr decodes it anyway; 0x6d is new), and makes no other value encode differently.
//
// Before msgpackr reads a message, checkMsgpack (msgpack-budget.ts) bounds what decoding it may cost and refuses what
// msgpackr would read but we never write (other extension types, the key __proto__, which msgpackr renames); encode()
// runs the same check on what it wrote, so what one side sends the other (with the same method definition) accepts.
const PACKR_OPTIONS = {
  useRecords: false,
  moreTypes: false,
  copyBuffers: true,
  mapsAsObjects: true,
  int64AsType: 'bigint',
  useBigIntExtension: true,
} as const;
const packr = new Packr(PACKR_OPTIONS);
// msgpackr writes every object as a map16 whose size it fills in afterwards, and throws past 65 535 keys, although it
// reads map32. An object that large is written again by this packr, which counts the keys first (map32 beyond
// 65 535): the common case keeps its single pass and its bytes, and what we can decode we can also encode.
const largeObjectPackr = new Packr({ ...PACKR_OPTIONS, variableMapSize: true });
const TOO_MANY_KEYS = /variableMapSize/;

/** A Map on its way to msgpackr: its keys and values, alternating. Only encode() makes these. */
class MapEntries {
  constructor(readonly flat: unknown[]) {}
}

/** A Set on its way to msgpackr: its items. Only encode() makes these. */
class SetItems {
  constructor(readonly items: unknown[]) {}
}

addExtension({
  Class: MapEntries,
  type: MAP_EXTENSION,
  write: (map: MapEntries) => map.flat,
  read(flat: unknown) {
    if (!Array.isArray(flat) || flat.length % 2 !== 0) throw new TypeError('malformed Map: expected an array of keys and values');
    const map = new Map<unknown, unknown>();
    for (let i = 0; i < flat.length; i += 2) map.set(flat[i], flat[i + 1]);
    return map;
  },
});

addExtension({
  Class: SetItems,
  type: SET_EXTENSION,
  write: (set: SetItems) => set.items,
  read(items: unknown) {
    if (!Array.isArray(items)) throw new TypeError('malformed Set: expected an array of items');
    return new Set(items);
  },
});

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** True when `value` is, or holds in its plain objects and arrays, a Map or a Set. */
function holdsMapOrSet(value: object): boolean {
  if (ArrayBuffer.isView(value)) return false; // byte strings, the commonest objects in a message: nothing inside
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (typeof item === 'object' && item !== null && holdsMapOrSet(item)) return true;
    }
    return false;
  }
  if (isPlainObject(value)) {
    for (const key in value) {
      const item = value[key];
      if (typeof item === 'object' && item !== null && holdsMapOrSet(item)) return true;
    }
    return false;
  }
  return value instanceof Map || value instanceof Set;
}

/** A copy of `value` with every Map and Set (in plain objects, arrays, and each other) swapped for its wrapper. */
function wrapMapsAndSets(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(wrapMapsAndSets);
  if (value instanceof Map) {
    const flat: unknown[] = [];
    for (const [key, item] of value) flat.push(wrapMapsAndSets(key), wrapMapsAndSets(item));
    return new MapEntries(flat);
  }
  if (value instanceof Set) return new SetItems(Array.from(value, wrapMapsAndSets));
  if (!isPlainObject(value)) return value;
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    // defineProperty, not assignment: an own "__proto__" key must stay a key, not become the copy's prototype
    Object.defineProperty(copy, key, { value: wrapMapsAndSets(value[key]), enumerable: true, writable: true, configurable: true });
  }
  return copy;
}

/** The decode budget of a msgpack codec (`createMsgpackCodec`); each is checked on every message, both ways. */
export interface MsgpackCodecOptions {
  /**
   * Elements one message may hold, counted by what they cost to decode: a nil, boolean, number, string, array, map or
   * undefined counts 1; a byte string, Date, Map or Set 2; a map's key 3; a bigint beyond 64 bits 1 more per 8 of its
   * bytes. Default 524 288; an integer from 1 to 2^32-1.
   */
  maxElements?: number;
  /** Arrays and maps (empty ones too) nested inside each other; a Map or Set counts as its array. Default 64; 0 - 256. */
  maxDepth?: number;
}

/**
 * Messages up to this size are decoded from a copy in one buffer kept for it. msgpackr makes a DataView for every new
 * source and stores it on the source as a property: each message (a fresh view of a socket chunk) paid for a DataView
 * and a new hidden class, ~40 % of decoding a small message, where a copy of a few hundred bytes costs a few ns.
 * Nothing decoded points into the copy: byte strings are copied out (copyBuffers), and the extensions that would
 * return views (typed arrays) are refused by checkMsgpack. Larger messages, and a decode inside a decode (a user's
 * msgpackr extension calling us), are read in place.
 */
const SCRATCH_BYTES = 4096;
const scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);
let scratchInUse = false;

function unpackValue(bytes: Uint8Array): unknown {
  if (bytes.length > SCRATCH_BYTES || scratchInUse) return packr.unpack(bytes);
  scratch.set(bytes);
  scratchInUse = true;
  try {
    return packr.unpack(scratch, bytes.length);
  } finally {
    scratchInUse = false;
  }
}

function packValue(value: unknown): Uint8Array {
  try {
    return packr.pack(value);
  } catch (error) {
    if (error instanceof Error && TOO_MANY_KEYS.test(error.message)) return largeObjectPackr.pack(value);
    throw error;
  }
}

/**
 * A msgpack codec with its own decode budget, for a method whose messages are larger than the default allows:
 * `unary({ codec: createMsgpackCodec({ maxElements: 1_000_000 }) })`. Both sides use the method's definition, so both
 * apply it: the receiver refuses a message over it (the call fails RESOURCE_EXHAUSTED), and the sender refuses to
 * send one. Throws a RangeError for an option out of its range.
 */
export function createMsgpackCodec(options: MsgpackCodecOptions = {}): Codec {
  checkLimitOption('maxElements', options.maxElements, 1, 2 ** 32 - 1);
  checkLimitOption('maxDepth', options.maxDepth, 0, MAX_MAX_DEPTH);
  const limits: MsgpackLimits = { maxElements: options.maxElements ?? DEFAULT_MAX_ELEMENTS, maxDepth: options.maxDepth ?? DEFAULT_MAX_DEPTH };
  // the pass's stack, made once: the pass is synchronous and never re-entered
  const stack = new Uint32Array(limits.maxDepth);
  const maps = new Uint8Array(limits.maxDepth);
  return {
    name: 'msgpack',
    encode(value) {
      const bytes = packValue(typeof value === 'object' && value !== null && holdsMapOrSet(value) ? wrapMapsAndSets(value) : value);
      checkMsgpack(bytes, limits, stack, maps);
      return bytes;
    },
    decode(bytes) {
      checkMsgpack(bytes, limits, stack, maps);
      return unpackValue(bytes);
    },
  };
}

/** The default codec: msgpack with the default budget (524 288 elements, 64 levels). */
export const msgpackCodec: Codec = createMsgpackCodec();

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** `.a[2]["b c"]`: where a value sits in a message, for error messages. */
function pathTo(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

/** Throws a TypeError at the first Map, Set or bigint JSON.stringify would drop, turn into {}, or choke on. */
function refuseWhatJsonCannotCarry(value: unknown, path: string): void {
  let type: string | undefined;
  if (typeof value === 'bigint') type = 'bigint';
  else if (value instanceof Map) type = 'Map';
  else if (value instanceof Set) type = 'Set';
  if (type !== undefined) {
    throw new TypeError(
      `codec "json" cannot carry a ${type} at ${path || 'the top level'}: JSON has no Map, Set or bigint. Use the msgpack ` +
        'codec (the default), which carries them exactly, or convert the value (Object.fromEntries(map), [...set], String(n))',
    );
  }
  if (typeof value !== 'object' || value === null) return;
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return; // JSON.stringify sends what toJSON returns
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) refuseWhatJsonCannotCarry(value[i], pathTo(path, i));
    return;
  }
  for (const key of Object.keys(value)) refuseWhatJsonCannotCarry((value as Record<string, unknown>)[key], pathTo(path, key));
}

export const jsonCodec: Codec = {
  name: 'json',
  encode(value) {
    let text: string | undefined;
    try {
      text = JSON.stringify(value);
    } catch (error) {
      // name the bigint and where it is (a cycle, the other TypeError, keeps JSON's own message: the walk would not end)
      if (error instanceof TypeError && /bigint/i.test(error.message)) refuseWhatJsonCannotCarry(value, '');
      throw error;
    }
    // after stringify, so the value is known to be free of cycles: a Map or Set would have gone out as {}
    refuseWhatJsonCannotCarry(value, '');
    return textEncoder.encode(text ?? 'null');
  },
  decode: (bytes) => JSON.parse(textDecoder.decode(bytes)) as unknown,
};

export const rawCodec: Codec = {
  name: 'raw',
  encode(value) {
    if (!(value instanceof Uint8Array)) throw new TypeError('a method with codec "raw" takes and returns Uint8Array');
    return value;
  },
  // new Uint8Array(view) copies; bytes.slice() would not when `bytes` is a Buffer (Buffer#slice returns a view)
  decode: (bytes) => new Uint8Array(bytes),
};

/**
 * Why a message did not decode, as the call's error. Over the codec's budget: RESOURCE_EXHAUSTED, naming the limit
 * (the message may be well formed; a larger budget would take it). Anything else: INTERNAL, naming the codec and the
 * usual cause, two sides that disagree about the method's codec (the wire does not say which codec a message was
 * written with, so a mismatch shows only as bytes that do not decode).
 */
export function decodeFailure(codec: Codec, what: string, error: unknown): RpcError {
  if (error instanceof CodecLimitError) return new RpcError(Status.RESOURCE_EXHAUSTED, `${what} ${error.message}`, { cause: error });
  const why = error instanceof Error ? error.message : String(error);
  return new RpcError(
    Status.INTERNAL,
    `could not decode ${what} with codec "${codec.name}" (${why}); both sides must use the same codec for this method: ` +
      'define the service once and use that definition on both sides',
    { cause: error },
  );
}

const byName: Record<CodecName, Codec> = { msgpack: msgpackCodec, json: jsonCodec, raw: rawCodec };

export function resolveCodec(codec: CodecName | Codec | undefined): Codec {
  if (codec === undefined) return msgpackCodec;
  if (typeof codec === 'string') {
    const found = byName[codec];
    if (!found) throw new TypeError(`unknown codec ${JSON.stringify(codec)}: use 'msgpack', 'json', 'raw' or a Codec object`);
    return found;
  }
  return codec;
}
