/**
 * The method names of the last OPENs read, so that the usual connection (a handful of methods, called again and
 * again) decodes none of them again, and hands the server's method table the same string each time, its hash already
 * computed. Decoding the name (a fresh string and a view per OPEN) and hashing it in the lookup cost a server about
 * 6 % of a 32-byte echo call.
 *
 * Process-wide and bounded: CACHED_NAMES names of at most MAX_METHOD_BYTES bytes each (a few KiB), replaced
 * round-robin. A peer that sends a new name with every OPEN costs at most CACHED_NAMES length comparisons and one copy
 * of the name more than the decode did. The lookup is synchronous and allocates nothing on a hit.
 */
import { decodeUtf8 } from './bytes.js';

const CACHED_NAMES = 16;
const names: string[] = [];
const encoded: Uint8Array[] = [];
let replaceNext = 0;
/** Where the last name was found: with one method called in a loop, the first comparison is the one that matches. */
let lastHit = 0;

/** The UTF-8 method name in bytes[start, end), or undefined when it is not valid UTF-8. */
export function methodName(bytes: Uint8Array, start: number, end: number): string | undefined {
  const count = names.length;
  for (let k = 0; k < count; k++) {
    const i = (lastHit + k) % count;
    if (sameBytes(encoded[i]!, bytes, start, end)) {
      lastHit = i;
      return names[i];
    }
  }
  const name = decodeUtf8(bytes, start, end);
  if (name === undefined) return undefined;
  const copy = bytes.slice(start, end);
  if (count < CACHED_NAMES) {
    names.push(name);
    encoded.push(copy);
  } else {
    names[replaceNext] = name;
    encoded[replaceNext] = copy;
    replaceNext = (replaceNext + 1) % CACHED_NAMES;
  }
  return name;
}

function sameBytes(known: Uint8Array, bytes: Uint8Array, start: number, end: number): boolean {
  if (known.length !== end - start) return false;
  for (let i = 0; i < known.length; i++) if (known[i] !== bytes[start + i]) return false;
  return true;
}
