/**
 * Messages as the command line shows and reads them: JSON, with what msgpack carries and JSON lacks spelled out.
 * Bytes are `{"$bytes": "<base64>"}` both ways; a bigint is printed as a decimal string, a Map as an object, a Set as
 * an array. Shared by `gridwire call` (and any command that prints messages).
 */
import { UsageError } from './command.js';

/** Parses a request given as JSON text; `{"$bytes": "..."}` becomes a Uint8Array. A UsageError says where it broke. */
export function parseJsonMessage(text: string, where: string): unknown {
  try {
    return JSON.parse(text, (_key, value: unknown) => {
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
        const keys = Object.keys(value);
        const bytes = (value as { $bytes?: unknown }).$bytes;
        if (keys.length === 1 && typeof bytes === 'string') return new Uint8Array(Buffer.from(bytes, 'base64'));
      }
      return value;
    });
  } catch (error) {
    throw new UsageError(`${where} is not valid JSON: ${(error as Error).message}`);
  }
}

/** A message as JSON: one line, or indented (`pretty`, for a terminal). */
export function formatJsonMessage(value: unknown, pretty: boolean): string {
  return JSON.stringify(value === undefined ? null : value, jsonReplacer, pretty ? 2 : undefined);
}

/**
 * JSON.stringify's replacer for what msgpack decodes that JSON cannot say as it is. It reads the holder's own value:
 * a Buffer's toJSON has already run on `value` by the time a replacer sees it.
 */
export function jsonReplacer(this: unknown, key: string, replaced: unknown): unknown {
  const value = (this as Record<string, unknown> | undefined)?.[key] ?? replaced;
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), v as unknown]));
  if (value instanceof Set) return [...value];
  return value;
}
