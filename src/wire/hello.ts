/**
 * The HELLO frame: each side's first frame (the dialer's at once, the acceptor's once it has admitted the dialer).
 * It names the protocol version range and the receive limits the sender imposes, as type-length-value settings so
 * that later versions can add settings that older peers skip.
 *
 * Layout: magic "GRIDWIRE" (8), version min u16, version max u16, setting count u8, then per setting:
 * id u16, length u16, value (u32 settings are 4 bytes, text settings UTF-8, AUTH_TOKEN opaque bytes).
 */
import { ByteReader, ByteWriter, utf8 } from './bytes.js';
import {
  HELLO_MAGIC,
  MAX_AUTH_TOKEN_BYTES,
  MAX_MAX_FRAME_BYTES,
  MAX_WINDOW,
  MIN_MAX_FRAME_BYTES,
  Setting,
} from './constants.js';
import { MalformedPayloadError } from './errors.js';

export interface HelloSettings {
  maxFrameBytes: number;
  initialStreamWindow: number;
  initialMessageWindow: number;
  connectionWindow: number;
  maxConcurrentStreams: number;
  maxMessageBytes: number;
  /** Feature bits (Setting.FEATURES); 0 when absent. */
  features: number;
  nodeName: string;
  label: string;
  /**
   * AUTH_TOKEN: a dialer's credentials, opaque bytes (a copy, never a view of the read buffer); undefined when absent.
   * Never part of what a session tells about its peer, never logged.
   */
  authToken?: Uint8Array | undefined;
}

export interface Hello {
  versionMin: number;
  versionMax: number;
  settings: HelloSettings;
}

/** Raised when the first bytes are not a gridwire HELLO at all (an HTTP request, random bytes). */
export class NotGridwireError extends MalformedPayloadError {}

const MAX_TEXT_SETTING_BYTES = 255;

export function encodeHello(hello: Hello): Uint8Array {
  const s = hello.settings;
  const numbers: Array<[number, number]> = [
    [Setting.MAX_FRAME_BYTES, s.maxFrameBytes],
    [Setting.INITIAL_STREAM_WINDOW, s.initialStreamWindow],
    [Setting.INITIAL_MESSAGE_WINDOW, s.initialMessageWindow],
    [Setting.CONNECTION_WINDOW, s.connectionWindow],
    [Setting.MAX_CONCURRENT_STREAMS, s.maxConcurrentStreams],
    [Setting.MAX_MESSAGE_BYTES, s.maxMessageBytes],
    [Setting.FEATURES, s.features],
  ];
  const texts: Array<[number, Uint8Array]> = [
    [Setting.NODE_NAME, utf8(s.nodeName)],
    [Setting.LABEL, utf8(s.label)],
  ];
  for (const [, bytes] of texts) {
    if (bytes.length > MAX_TEXT_SETTING_BYTES) throw new RangeError(`node name and label must be at most ${MAX_TEXT_SETTING_BYTES} bytes`);
  }
  const token = s.authToken;
  if (token !== undefined && token.length > 0) {
    // the message names the setting, never its value
    if (token.length > MAX_AUTH_TOKEN_BYTES) throw new RangeError(`the auth token must be at most ${MAX_AUTH_TOKEN_BYTES} bytes`);
    texts.push([Setting.AUTH_TOKEN, token]);
  }
  const size = HELLO_MAGIC.length + 2 + 2 + 1 + numbers.length * 8 + texts.reduce((n, [, b]) => n + 4 + b.length, 0);
  const w = new ByteWriter(size).raw(HELLO_MAGIC).u16(hello.versionMin).u16(hello.versionMax).u8(numbers.length + texts.length);
  for (const [id, value] of numbers) w.u16(id).u16(4).u32(value);
  for (const [id, bytes] of texts) w.u16(id).u16(bytes.length).raw(bytes);
  return w.done();
}

function checkRange(name: string, value: number, min: number, max: number): number {
  if (value < min || value > max) throw new MalformedPayloadError(`HELLO ${name} ${value} is outside ${min}..${max}`);
  return value;
}

/** Settings a peer leaves out take these values: the most conservative ones that still work. */
const ABSENT: HelloSettings = {
  maxFrameBytes: MIN_MAX_FRAME_BYTES,
  initialStreamWindow: 64 * 1024,
  initialMessageWindow: 16,
  connectionWindow: 1024 * 1024,
  maxConcurrentStreams: 100,
  maxMessageBytes: 4 * 1024 * 1024,
  features: 0,
  nodeName: '',
  label: '',
};

export function decodeHello(payload: Uint8Array): Hello {
  const r = new ByteReader(payload);
  if (payload.length < HELLO_MAGIC.length || !HELLO_MAGIC.every((b, i) => payload[i] === b)) {
    throw new NotGridwireError('the peer did not start with the gridwire HELLO; it is not a gridwire endpoint');
  }
  r.bytesView(HELLO_MAGIC.length, 'HELLO magic');
  const versionMin = r.u16('HELLO version min');
  const versionMax = r.u16('HELLO version max');
  if (versionMin > versionMax) throw new MalformedPayloadError(`HELLO version range ${versionMin}..${versionMax} is empty`);
  const settings: HelloSettings = { ...ABSENT };
  const seen = new Set<number>();
  const count = r.u8('HELLO setting count');
  for (let i = 0; i < count; i++) {
    const id = r.u16('HELLO setting id');
    const length = r.u16('HELLO setting length');
    const value = r.bytesView(length, 'HELLO setting value');
    if (seen.has(id)) throw new MalformedPayloadError(`HELLO setting ${id} appears twice`);
    seen.add(id);
    const vr = new ByteReader(value);
    switch (id) {
      case Setting.MAX_FRAME_BYTES:
        settings.maxFrameBytes = checkRange('maxFrameBytes', u32Setting(vr), MIN_MAX_FRAME_BYTES, MAX_MAX_FRAME_BYTES);
        break;
      case Setting.INITIAL_STREAM_WINDOW:
        settings.initialStreamWindow = checkRange('initialStreamWindow', u32Setting(vr), 0, MAX_WINDOW);
        break;
      case Setting.INITIAL_MESSAGE_WINDOW:
        settings.initialMessageWindow = checkRange('initialMessageWindow', u32Setting(vr), 1, MAX_WINDOW);
        break;
      case Setting.CONNECTION_WINDOW:
        settings.connectionWindow = checkRange('connectionWindow', u32Setting(vr), 0, MAX_WINDOW);
        break;
      case Setting.MAX_CONCURRENT_STREAMS:
        settings.maxConcurrentStreams = u32Setting(vr);
        break;
      case Setting.MAX_MESSAGE_BYTES:
        settings.maxMessageBytes = u32Setting(vr);
        break;
      case Setting.FEATURES:
        settings.features = u32Setting(vr);
        break;
      case Setting.NODE_NAME:
        settings.nodeName = vr.utf8(length, 'HELLO node name');
        break;
      case Setting.LABEL:
        settings.label = vr.utf8(length, 'HELLO label');
        break;
      case Setting.AUTH_TOKEN:
        // checked before the copy; the message says how long it was, never what it held
        if (length > MAX_AUTH_TOKEN_BYTES) throw new MalformedPayloadError(`HELLO auth token of ${length} bytes is longer than ${MAX_AUTH_TOKEN_BYTES}`);
        settings.authToken = value.slice();
        break;
      default:
        break; // unknown settings are skipped so that newer peers can add some
    }
  }
  r.expectEnd('HELLO');
  return { versionMin, versionMax, settings };
}

function u32Setting(r: ByteReader): number {
  const v = r.u32('HELLO setting');
  r.expectEnd('HELLO setting');
  return v;
}
