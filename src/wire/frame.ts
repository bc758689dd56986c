/**
 * The fixed frame header: type u8, flags u8, stream id u32, payload length u32, all big-endian.
 * Pure functions over bytes.
 */
import { FRAME_HEADER_BYTES } from './constants.js';

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Uint8Array;
}

export function writeFrameHeader(target: Uint8Array, offset: number, type: number, flags: number, streamId: number, length: number): void {
  target[offset] = type;
  target[offset + 1] = flags;
  target[offset + 2] = streamId >>> 24;
  target[offset + 3] = (streamId >>> 16) & 0xff;
  target[offset + 4] = (streamId >>> 8) & 0xff;
  target[offset + 5] = streamId & 0xff;
  target[offset + 6] = length >>> 24;
  target[offset + 7] = (length >>> 16) & 0xff;
  target[offset + 8] = (length >>> 8) & 0xff;
  target[offset + 9] = length & 0xff;
}

/** One frame as a fresh byte array. The session's writer does the same into a shared buffer instead. */
export function encodeFrame(frame: Frame): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + frame.payload.length);
  writeFrameHeader(out, 0, frame.type, frame.flags, frame.streamId, frame.payload.length);
  out.set(frame.payload, FRAME_HEADER_BYTES);
  return out;
}
