/**
 * The msgpack codec's decode budget: one pass over a message's bytes, before msgpackr reads it, that refuses what
 * would make decoding cost more than a bounded time and memory. It knows MessagePack's byte layout and the extension
 * types gridwire writes; it knows nothing of sessions, calls or statuses (the codec's callers turn a
 * `CodecLimitError` into RESOURCE_EXHAUSTED and any other error into INTERNAL).
 *
 * Why: msgpackr's cost per value ranges from ~10 ns (a nil in an array) to ~1 µs (a map entry whose key no object
 * had before), and it recurses once per nesting level, so one 4 MiB message of tiny values blocked the event loop for
 * up to a second and took ~60 times its size in heap. The pass costs a few ns per value and nothing per byte of a
 * string or byte string (skipped by their length), allocates nothing, and keeps its own stack, so no message can
 * overflow the call stack.
 *
 * What it refuses (over a budget: CodecLimitError; malformed: a plain Error):
 * - more than `maxElements` elements, counted by what they cost to decode: a value (nil, boolean, number, string,
 *   array, map, undefined) counts 1; a byte string, Date, Map or Set 2 (each is an object with its own backing
 *   store, ~300 ns); a map's key 3 (the costliest value, up to ~1 µs: a plain object gets a property, often a new
 *   shape); a bigint beyond 64 bits 1 more per 8 of its bytes. A container is charged for all its items at its
 *   header, before any is read, so a header claiming 2^32 items costs nothing;
 * - arrays and maps (empty ones included) nested deeper than `maxDepth`;
 * - a container that claims more items than there are bytes left (each item takes at least one byte), a string,
 *   byte string or extension longer than the bytes left, bytes after the value, the never-used byte 0xc1;
 * - an extension gridwire does not write: only undefined (0x00), Date (0xff, the timestamp forms), bigint (0x42),
 *   Map (0x6d) and Set (0x73, `d4 73 00` and then an array), so no msgpackr records (0x72), structured-clone
 *   references (0x69, 0x70), Error (0x65), RegExp (0x78), typed arrays (0x74) or bundled strings (0x62) from a peer;
 * - the map key "__proto__" (msgpackr would rename it, silently: refused, so no key is changed and none touches a
 *   prototype). "constructor" and "prototype" are ordinary own keys of a plain object, as JSON.parse makes them.
 *
 * The pass, as a state machine over the bytes (one state, "read the next value's header"; `left` counts the values
 * still due in the innermost open container, the top level being a container of one):
 *
 * | at                                     | does                                                              |
 * |----------------------------------------|-------------------------------------------------------------------|
 * | `left` = 0, depth 0                    | done; a byte left over is an error                                |
 * | `left` = 0, depth > 0                  | pop: the parent's `left` and kind come back from the stack        |
 * | a scalar (nil, boolean, number)        | skip its fixed size                                               |
 * | a string, byte string, extension       | check its length against the bytes left (and its type), skip it   |
 * | the Map / Set prefix `d4 6d 00`        | check an array follows; it is the value, so give its slot back    |
 * | an array or map of n items             | check the depth, n, the budget; if n > 0 push `left`, `left` = n  |
 */

/** The budget of one msgpack codec. */
export interface MsgpackLimits {
  /** Elements one message may hold: a value 1; a byte string, Date, Map or Set 2; a map key 3; a bigint 1 per 8 bytes more. */
  readonly maxElements: number;
  /** Arrays and maps one message may nest inside each other (a value that is no container is depth 0). */
  readonly maxDepth: number;
}

/**
 * 524 288: an array of 500 000 numbers fits, or an object of 131 071 keys, or 20 000 records of 5 fields (a review
 * found 131 072 refusing ordinary messages of 150 000 numbers or 2 200 rows of 15 fields). The costliest message
 * within it (map entries with fresh keys) costs about 0.2 µs an element to decode (docs/OPTIONS.md, "The msgpack
 * decode budget", has the measurements): a bound on one message's cost, traded against refusing honest data.
 */
export const DEFAULT_MAX_ELEMENTS = 524_288;
/** Deeper than any data a person designs; shallow enough that neither msgpackr nor a handler walking the value recurses far. */
export const DEFAULT_MAX_DEPTH = 64;
/**
 * The largest `maxDepth`. msgpackr encodes and decodes recursively, a Map or Set taking three frames a level: encoding
 * nested Maps overflowed Node's default stack past ~770 levels (arrays ~1 400), so 256 leaves room for the stack a
 * call is encoded on and for a handler that walks the value recursively.
 */
export const MAX_MAX_DEPTH = 256;

/** A message over the codec's budget: the call fails RESOURCE_EXHAUSTED. */
export class CodecLimitError extends RangeError {
  override readonly name = 'CodecLimitError';
}

/** gridwire's own extension types (codec.ts writes them): a Map, as its keys and values alternating, and a Set. */
export const MAP_EXTENSION = 0x6d;
export const SET_EXTENSION = 0x73;
const BIGINT_EXTENSION = 0x42;
const DATE_EXTENSION = 0xff;
const UNDEFINED_EXTENSION = 0x00;
/** "__proto__" as UTF-8. */
const PROTO_KEY = Uint8Array.from('__proto__', (c) => c.charCodeAt(0));

/**
 * Throws a RangeError naming the option unless `value` is undefined or an integer in [min, max]. Checked once, where a
 * codec is made, like the session options.
 */
export function checkLimitOption(name: string, value: unknown, min: number, max: number): void {
  if (value === undefined) return;
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return;
  const shown = typeof value === 'number' ? String(value) : typeof value === 'string' ? JSON.stringify(value) : typeof value;
  throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${shown}`);
}

/**
 * The pass itself. `stack` and `maps` are scratch of at least `limits.maxDepth` entries, owned by the codec: the pass
 * is synchronous and never re-entered, so one pair serves every message. Values are counted when their container's
 * header is read (the top level is one), so a scalar costs one byte test and nothing else.
 */
export function checkMsgpack(bytes: Uint8Array, limits: MsgpackLimits, stack: Uint32Array, maps: Uint8Array): void {
  const end = bytes.length;
  const maxDepth = limits.maxDepth;
  let budget = limits.maxElements - 1; // elements still allowed; the top-level value is the first
  let pos = 0;
  let depth = 0;
  let left = 1;
  let inMap = false;
  for (;;) {
    if (left === 0) {
      do {
        if (depth === 0) {
          if (pos !== end) throw new Error(`${end - pos} bytes follow the end of the value`);
          return;
        }
        depth--;
        left = stack[depth]!;
      } while (left === 0);
      inMap = maps[depth] === 1;
    }
    if (pos >= end) throw truncated();
    left--;
    const token = bytes[pos++]!;
    if (token < 0x80 || token >= 0xe0) continue; // fixint
    let items: number; // a container's values (a map's keys and values); -1 for anything else
    let charge = 0; // what the value costs beyond the 1 its container paid for it
    let length: number; // what follows the header: a string's, byte string's or extension's bytes
    if (token < 0xa0) {
      items = token < 0x90 ? (token & 0x0f) * 2 : token & 0x0f;
      length = 0;
    } else if (token < 0xc0) {
      // fixstr, the commonest value after fixint: skipped here, without the general path below
      length = token & 0x1f;
      if (length > end - pos) throw overrun(length, end - pos);
      // a key is at an odd `left` (a map's values alternate key, value)
      if (length === 9 && inMap && (left & 1) === 1 && isProtoKey(bytes, pos)) throw protoKey();
      pos += length;
      continue;
    } else {
      items = -1;
      switch (token) {
        case 0xc0: // nil
        case 0xc2: // false
        case 0xc3: // true
          continue;
        // numbers: skipped here, without the general path below
        case 0xcc: // uint 8
        case 0xd0: // int 8
          if (++pos > end) throw truncated();
          continue;
        case 0xcd: // uint 16
        case 0xd1: // int 16
          if ((pos += 2) > end) throw truncated();
          continue;
        case 0xca: // float 32
        case 0xce: // uint 32
        case 0xd2: // int 32
          if ((pos += 4) > end) throw truncated();
          continue;
        case 0xcb: // float 64
        case 0xcf: // uint 64
        case 0xd3: // int 64
          if ((pos += 8) > end) throw truncated();
          continue;
        case 0xc4: // bin 8
        case 0xd9: // str 8
          if (pos + 1 > end) throw truncated();
          length = bytes[pos]!;
          pos += 1;
          break;
        case 0xc5: // bin 16
        case 0xda: // str 16
          if (pos + 2 > end) throw truncated();
          length = uint16(bytes, pos);
          pos += 2;
          break;
        case 0xc6: // bin 32
        case 0xdb: // str 32
          if (pos + 4 > end) throw truncated();
          length = uint32(bytes, pos);
          pos += 4;
          break;
        case 0xd4: // fixext 1
          if (pos + 2 > end) throw truncated();
          if (bytes[pos] === MAP_EXTENSION || bytes[pos] === SET_EXTENSION) {
            checkWrapper(bytes, pos);
            if (--budget < 0) throw overElements(limits.maxElements); // the Map or Set itself; its array paid 1
            pos += 2;
            left++; // the array that follows is the value: it takes the slot
            continue;
          }
          charge = checkExtension(bytes[pos]!, 1);
          length = 2;
          break;
        case 0xd5: // fixext 2
        case 0xd6: // fixext 4
        case 0xd7: // fixext 8
        case 0xd8: // fixext 16
          if (pos + 1 > end) throw truncated();
          length = 1 << (token - 0xd4);
          charge = checkExtension(bytes[pos]!, length);
          length += 1;
          break;
        case 0xc7: // ext 8
          if (pos + 2 > end) throw truncated();
          length = bytes[pos]!;
          pos += 1;
          charge = checkExtension(bytes[pos]!, length);
          length += 1;
          break;
        case 0xc8: // ext 16
          if (pos + 3 > end) throw truncated();
          length = uint16(bytes, pos);
          pos += 2;
          charge = checkExtension(bytes[pos]!, length);
          length += 1;
          break;
        case 0xc9: // ext 32
          if (pos + 5 > end) throw truncated();
          length = uint32(bytes, pos);
          pos += 4;
          charge = checkExtension(bytes[pos]!, length);
          length += 1;
          break;
        case 0xdc: // array 16
        case 0xde: // map 16
          if (pos + 2 > end) throw truncated();
          items = token === 0xde ? uint16(bytes, pos) * 2 : uint16(bytes, pos);
          length = 0;
          pos += 2;
          break;
        case 0xdd: // array 32
        case 0xdf: // map 32
          if (pos + 4 > end) throw truncated();
          items = token === 0xdf ? uint32(bytes, pos) * 2 : uint32(bytes, pos);
          length = 0;
          pos += 4;
          break;
        default:
          throw new Error('the byte 0xc1 is never used in MessagePack');
      }
    }
    if (length > 0) {
      if (length > end - pos) throw overrun(length, end - pos);
      if (length === 9 && inMap && (left & 1) === 1 && token >= 0xd9 && token <= 0xdb && isProtoKey(bytes, pos)) throw protoKey();
      pos += length;
    }
    if (items < 0) {
      if (token >= 0xc4 && token <= 0xc6) charge = 1; // a byte string: a Buffer and its own backing store
      if (charge > 0 && (budget -= charge) < 0) throw overElements(limits.maxElements);
      continue;
    }
    if (depth === maxDepth) throw new CodecLimitError(`nests arrays and maps deeper than ${maxDepth} levels (the codec's maxDepth); ${RAISE}`);
    if (items === 0) continue;
    if (items > end - pos) throw new Error(`a container claims ${items} values but only ${end - pos} bytes are left`);
    const isMap = token < 0x90 || token === 0xde || token === 0xdf;
    budget -= isMap ? items * 2 : items; // a map: 3 for each key, 1 for each value
    if (budget < 0) throw overElements(limits.maxElements);
    stack[depth] = left;
    maps[depth] = inMap ? 1 : 0;
    depth++;
    left = items;
    inMap = isMap;
  }
}

/** A Map or Set prefix (`d4 6d 00`, `d4 73 00`) must be followed by its array (a Map's of even length). */
function checkWrapper(bytes: Uint8Array, at: number): void {
  const type = bytes[at]!;
  const next = bytes[at + 2];
  let items = -1;
  if (next !== undefined && next >= 0x90 && next <= 0x9f) items = next & 0x0f;
  else if (next === 0xdc && at + 5 <= bytes.length) items = uint16(bytes, at + 3);
  else if (next === 0xdd && at + 7 <= bytes.length) items = uint32(bytes, at + 3);
  if (bytes[at + 1] !== 0 || items < 0 || (type === MAP_EXTENSION && items % 2 !== 0)) {
    throw new Error(type === MAP_EXTENSION ? 'malformed Map: expected an array of keys and values' : 'malformed Set: expected an array of items');
  }
}

const RAISE = "raise it in the method's definition (codec: createMsgpackCodec({ ... })), which both sides use";

function overElements(max: number): CodecLimitError {
  return new CodecLimitError(
    `holds more than the codec's maxElements of ${max} (each value counts 1; a byte string, Date, Map or Set 2; a map key 3); ${RAISE}`,
  );
}

function overrun(length: number, left: number): Error {
  return new Error(`a value claims ${length} bytes but only ${left} are left`);
}

function truncated(): Error {
  return new Error('the message ends in the middle of a value');
}

function protoKey(): Error {
  return new Error('a map has the key "__proto__", which a JavaScript object cannot hold as an own key when decoded');
}

/** Throws for an extension gridwire does not write; returns what it costs beyond 1 (a Date 1, a bigint 1 per 8 bytes). */
function checkExtension(type: number, length: number): number {
  if (type === BIGINT_EXTENSION && length > 0) return length >>> 3;
  if (type === DATE_EXTENSION && (length === 4 || length === 8 || length === 12 || length === 1)) return 1;
  if (type === UNDEFINED_EXTENSION && length === 1) return 0;
  throw new Error(`extension type 0x${type.toString(16).padStart(2, '0')} of ${length} bytes is not one gridwire writes (undefined 0x00, Date 0xff, bigint 0x42, Map 0x6d, Set 0x73)`);
}

function isProtoKey(bytes: Uint8Array, at: number): boolean {
  if (at + 9 > bytes.length) return false;
  for (let i = 0; i < 9; i++) if (bytes[at + i] !== PROTO_KEY[i]) return false;
  return true;
}

function uint16(bytes: Uint8Array, at: number): number {
  return (bytes[at]! << 8) | bytes[at + 1]!;
}

function uint32(bytes: Uint8Array, at: number): number {
  return bytes[at]! * 0x1000000 + ((bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!);
}
