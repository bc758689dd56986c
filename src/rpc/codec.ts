/**
 * Message codecs, chosen per method: msgpack (msgpackr, the default), JSON, and raw bytes (no codec at all: the
 * handler gets and returns Uint8Array). Decoders never return views into connection buffers, so a value kept by the
 * application does not pin a socket chunk.
 */
import { Packr } from 'msgpackr';

export interface Codec {
  readonly name: string;
  encode(value: unknown): Uint8Array;
  /** `bytes` is only valid during the call. */
  decode(bytes: Uint8Array): unknown;
}

export type CodecName = 'msgpack' | 'json' | 'raw';

// Plain MessagePack (no msgpackr records or structured-clone extensions) so that any msgpack peer can talk to us.
// msgpackr refuses container lengths beyond the remaining bytes and maps the key __proto__ to a harmless name.
const packr = new Packr({ useRecords: false, moreTypes: false, copyBuffers: true, mapsAsObjects: true, int64AsType: 'number' });

export const msgpackCodec: Codec = {
  name: 'msgpack',
  encode: (value) => packr.pack(value),
  decode: (bytes) => packr.unpack(bytes),
};

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

export const jsonCodec: Codec = {
  name: 'json',
  encode: (value) => textEncoder.encode(JSON.stringify(value) ?? 'null'),
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
