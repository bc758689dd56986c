/**
 * FrameDecoder on hand-written bytes: what it delivers, how it treats arbitrary chunk boundaries, and which
 * ProtocolErrorCode each malformed header raises (always at the header, before any payload byte is kept).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ConnectionCode, Flag, FrameType } from '../../src/wire/constants.js';
import { FrameDecoder, type DecoderOptions } from '../../src/wire/decoder.js';
import { ProtocolError, ProtocolErrorCode } from '../../src/wire/errors.js';

interface Delivered {
  type: number;
  flags: number;
  streamId: number;
  payload: Uint8Array;
}

const MAX = 64 * 1024;

/** "07 00 00000000" -> bytes; spaces and newlines are ignored. */
function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, '');
  assert.equal(clean.length % 2, 0, `odd hex string ${text}`);
  return Uint8Array.from(Buffer.from(clean, 'hex'));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

/** A decoder that records (a copy of) every delivered frame. */
function collector(options: Partial<DecoderOptions> = {}): { decoder: FrameDecoder; frames: Delivered[] } {
  const frames: Delivered[] = [];
  const decoder = new FrameDecoder(
    (type, flags, streamId, payload) => {
      // the payload may be a view into the pushed chunk: copy it, as a real handler must
      frames.push({ type, flags, streamId, payload: payload.slice() });
    },
    { maxFrameBytes: MAX, ...options },
  );
  return { decoder, frames };
}

function decodeAll(bytes: Uint8Array, options: Partial<DecoderOptions> = {}): Delivered[] {
  const { decoder, frames } = collector(options);
  decoder.push(bytes);
  assert.equal(decoder.atFrameBoundary, true, 'input ends on a frame boundary');
  return frames;
}

function frame(type: number, flags: number, streamId: number, payload: number[] | Uint8Array = []): Delivered {
  return { type, flags, streamId, payload: Uint8Array.from(payload) };
}

/** Asserts that pushing `chunks` in order throws a ProtocolError with `code`, on the last chunk and not before. */
function assertRefused(chunks: Uint8Array[], code: ProtocolErrorCode, options: Partial<DecoderOptions> = {}): Delivered[] {
  const { decoder, frames } = collector(options);
  for (const chunk of chunks.slice(0, -1)) decoder.push(chunk);
  assert.throws(
    () => decoder.push(chunks[chunks.length - 1]!),
    (err: unknown) => {
      assert.ok(err instanceof ProtocolError, `expected ProtocolError, got ${String(err)}`);
      assert.equal(err.code, code);
      return true;
    },
  );
  return frames;
}

void describe('FrameDecoder: well-formed frames from hex', () => {
  void test('decodes a PING on stream 0 with its 8 opaque bytes', () => {
    assert.deepEqual(decodeAll(hex('07 00 00000000 00000008 0102030405060708')), [
      frame(FrameType.PING, 0, 0, [1, 2, 3, 4, 5, 6, 7, 8]),
    ]);
  });

  void test('decodes a PING reply with the ACK flag', () => {
    assert.deepEqual(decodeAll(hex('07 01 00000000 00000008 ffffffffffffffff')), [
      frame(FrameType.PING, Flag.ACK, 0, [255, 255, 255, 255, 255, 255, 255, 255]),
    ]);
  });

  void test('decodes a DATA frame with payload "hello" and MESSAGE_END on stream 1', () => {
    assert.deepEqual(decodeAll(hex('03 01 00000001 00000005 68656c6c6f')), [
      frame(FrameType.DATA, Flag.MESSAGE_END, 1, Buffer.from('hello')),
    ]);
  });

  void test('delivers a zero-length DATA frame carrying END_STREAM (complete with its header)', () => {
    const { decoder, frames } = collector();
    decoder.push(hex('03 02 00000003 00000000'));
    assert.deepEqual(frames, [frame(FrameType.DATA, Flag.END_STREAM, 3, [])]);
    assert.equal(decoder.atFrameBoundary, true);
  });

  void test('reads stream ids and lengths big-endian, up to the largest stream id 2^31-1', () => {
    assert.deepEqual(decodeAll(hex('03 ff 7fffffff 00000001 2a')), [frame(FrameType.DATA, 0xff, 0x7fff_ffff, [42])]);
    assert.deepEqual(decodeAll(hex('04 00 01020304 00000002 0000')), [frame(FrameType.END, 0, 0x01020304, [0, 0])]);
  });

  void test('decodes a CREDIT for a stream and for the connection (stream 0)', () => {
    assert.deepEqual(decodeAll(hex('06 00 00000005 00000004 00010000')), [frame(FrameType.CREDIT, 0, 5, [0, 1, 0, 0])]);
    assert.deepEqual(decodeAll(hex('06 00 00000000 00000004 7fffffff')), [frame(FrameType.CREDIT, 0, 0, [0x7f, 0xff, 0xff, 0xff])]);
  });

  void test('skips an extension frame (0x80) with a payload without delivering it, then decodes the next frame', () => {
    const frames = decodeAll(hex('80 00 00000000 00000003 aabbcc  07 00 00000000 00000008 0000000000000001'));
    assert.deepEqual(frames, [frame(FrameType.PING, 0, 0, [0, 0, 0, 0, 0, 0, 0, 1])]);
  });

  void test('skips an empty extension frame (0xff, on a stream) without delivering it', () => {
    const { decoder, frames } = collector();
    decoder.push(hex('ff 07 00000009 00000000'));
    assert.deepEqual(frames, []);
    assert.equal(decoder.atFrameBoundary, true);
    decoder.push(hex('03 00 00000009 00000001 01'));
    assert.deepEqual(frames, [frame(FrameType.DATA, 0, 9, [1])]);
  });

  void test('an empty extension frame right after a zero-length DATA does not re-deliver the DATA', () => {
    const frames = decodeAll(hex('03 02 00000001 00000000  9a 00 00000000 00000000  c0 00 00000001 00000000'));
    assert.deepEqual(frames, [frame(FrameType.DATA, Flag.END_STREAM, 1, [])]);
  });

  void test('onExtensionFrame is told of each extension frame (empty or not, whole or split at any offset) as its header is read', () => {
    const bytes = hex('80 00 00000000 00000003 aabbcc  07 00 00000000 00000008 0000000000000001  ff 07 00000009 00000000');
    for (let cut = 0; cut <= bytes.length; cut++) {
      const seen: number[] = [];
      const { decoder, frames } = collector({ onExtensionFrame: (type) => seen.push(type) });
      decoder.push(bytes.subarray(0, cut));
      decoder.push(bytes.subarray(cut));
      assert.deepEqual(seen, [0x80, 0xff], `split at ${cut}`);
      assert.deepEqual(frames, [frame(FrameType.PING, 0, 0, [0, 0, 0, 0, 0, 0, 0, 1])]);
    }
  });

  void test('an error thrown by onExtensionFrame leaves push(), before the frame\'s payload is skipped', () => {
    const { decoder, frames } = collector({
      onExtensionFrame: () => {
        throw new Error('too many');
      },
    });
    assert.throws(() => decoder.push(hex('07 00 00000000 00000008 0000000000000001  80 00 00000000 00000003 aabbcc')), /too many/);
    assert.equal(frames.length, 1, 'the PING before it was delivered');
  });

  void test('decodes several frames of different types from a single chunk, in order', () => {
    const bytes = hex(`
      07 00 00000000 00000008 1111111111111111
      02 00 00000001 00000008 000003e8 00000000
      03 01 00000001 00000003 616263
      81 00 00000000 00000002 dead
      03 02 00000001 00000000
      06 00 00000001 00000004 00000400
      04 00 00000001 00000004 00000000
      08 00 00000000 0000000a 00000001 00000000 0000
    `);
    assert.deepEqual(decodeAll(bytes), [
      frame(FrameType.PING, 0, 0, Array(8).fill(0x11)),
      frame(FrameType.OPEN, 0, 1, [0, 0, 3, 0xe8, 0, 0, 0, 0]),
      frame(FrameType.DATA, Flag.MESSAGE_END, 1, Buffer.from('abc')),
      frame(FrameType.DATA, Flag.END_STREAM, 1, []),
      frame(FrameType.CREDIT, 0, 1, [0, 0, 4, 0]),
      frame(FrameType.END, 0, 1, [0, 0, 0, 0]),
      frame(FrameType.GOAWAY, 0, 0, [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
    ]);
  });

  void test('accepts a frame whose length is exactly maxFrameBytes', () => {
    const payload = new Uint8Array(MAX).fill(7);
    const bytes = concat(hex('03 00 00000001 00010000'), payload);
    const frames = decodeAll(bytes);
    assert.equal(frames.length, 1);
    assert.deepEqual(frames[0]!.payload, payload);
  });

  void test('setMaxFrameBytes raises the limit for later frames', () => {
    const { decoder, frames } = collector({ maxFrameBytes: 4 });
    decoder.setMaxFrameBytes(16);
    decoder.push(concat(hex('03 00 00000001 00000010'), new Uint8Array(16)));
    assert.equal(frames.length, 1);
  });
});

/** Frames covering every decoder path: header+payload, empty, skipped (with and without payload), connection types. */
const MIXED = hex(`
  01 00 00000000 00000004 47524944
  07 00 00000000 00000008 0102030405060708
  02 00 00000001 00000005 0000000a 00
  03 01 00000001 00000007 70617966756c6c
  80 55 00000001 00000005 0102030405
  03 02 00000001 00000000
  ff 00 00000000 00000000
  06 00 00000001 00000004 00001000
  05 01 00000003 00000003 0e0000
  08 00 00000000 0000000a 00000003 00000000 0000
`);
/** Byte offsets at which a frame ends in MIXED (0 included). */
const MIXED_BOUNDARIES = [0, 14, 32, 47, 64, 79, 89, 99, 113, 126, 146];

void describe('FrameDecoder: chunk boundaries', () => {
  const whole = decodeAll(MIXED);

  void test('the fixture decodes to its 8 deliverable frames (extension frames skipped)', () => {
    assert.equal(MIXED.length, MIXED_BOUNDARIES[MIXED_BOUNDARIES.length - 1]);
    assert.deepEqual(
      whole.map((f) => f.type),
      [FrameType.HELLO, FrameType.PING, FrameType.OPEN, FrameType.DATA, FrameType.DATA, FrameType.CREDIT, FrameType.RESET, FrameType.GOAWAY],
    );
  });

  void test('T-F6 splitting the stream into two chunks at every offset gives the same frames as one chunk', () => {
    for (let cut = 0; cut <= MIXED.length; cut++) {
      const { decoder, frames } = collector({ expectHelloFirst: true });
      decoder.push(MIXED.subarray(0, cut));
      decoder.push(MIXED.subarray(cut));
      assert.deepEqual(frames, whole, `split at ${cut}`);
      assert.equal(decoder.atFrameBoundary, true);
    }
  });

  void test('T-F6 feeding the stream one byte at a time gives the same frames as one chunk', () => {
    const { decoder, frames } = collector({ expectHelloFirst: true });
    for (let i = 0; i < MIXED.length; i++) decoder.push(MIXED.subarray(i, i + 1));
    assert.deepEqual(frames, whole);
  });

  void test('T-F6 empty chunks change nothing', () => {
    const { decoder, frames } = collector();
    decoder.push(new Uint8Array(0));
    for (let i = 0; i < MIXED.length; i += 3) {
      decoder.push(MIXED.subarray(i, i + 3));
      decoder.push(new Uint8Array(0));
    }
    assert.deepEqual(frames, whole);
  });

  void test('atFrameBoundary is true exactly between frames and false mid-header or mid-payload', () => {
    const { decoder } = collector();
    assert.equal(decoder.atFrameBoundary, true, 'fresh decoder');
    for (let i = 0; i < MIXED.length; i++) {
      decoder.push(MIXED.subarray(i, i + 1));
      assert.equal(decoder.atFrameBoundary, MIXED_BOUNDARIES.includes(i + 1), `after ${i + 1} bytes`);
    }
  });

  void test('T-F6 a payload that arrives across chunks is reassembled, not handed out as a partial view', () => {
    const received: Uint8Array[] = [];
    const decoder = new FrameDecoder((_t, _f, _s, payload) => received.push(payload), { maxFrameBytes: MAX });
    const bytes = hex('03 00 00000001 00000006 010203040506');
    decoder.push(bytes.subarray(0, 12));
    decoder.push(bytes.subarray(12));
    assert.deepEqual(received, [Uint8Array.from([1, 2, 3, 4, 5, 6])]);
  });

  void test('a chunk that ends with a header, then a chunk holding the whole payload: the payload is a view of that chunk, not a copy', () => {
    // how the WebSocket binding delivers a bulk frame: its header and its payload in two messages
    const received: Uint8Array[] = [];
    const decoder = new FrameDecoder((_t, _f, _s, payload) => received.push(payload), { maxFrameBytes: MAX });
    const payloadChunk = concat(Uint8Array.of(1, 2, 3, 4, 5, 6), hex('04 00 00000001 00000000'));
    decoder.push(hex('07 00 00000000 00000008 0000000000000000 03 00 00000001 00000006'));
    decoder.push(payloadChunk);
    assert.equal(received.length, 3, 'the PING, the DATA and the END');
    assert.deepEqual(received[1], Uint8Array.from([1, 2, 3, 4, 5, 6]));
    assert.equal(received[1]!.buffer, payloadChunk.buffer, 'a view of the chunk');
    assert.equal(decoder.atFrameBoundary, true);
    // and when the next chunk holds only part of it, the payload is reassembled
    decoder.push(hex('03 00 00000001 00000006'));
    assert.equal(decoder.atFrameBoundary, false, 'a header read, its payload to come');
    decoder.push(Uint8Array.of(9, 8));
    decoder.push(Uint8Array.of(7, 6, 5, 4));
    assert.deepEqual(received[3], Uint8Array.from([9, 8, 7, 6, 5, 4]));
  });
});

/** A decoder with the pieces option: records whole frames and pieces (each piece: is it a view of the chunk pushed). */
function pieceCollector(take: (flags: number, streamId: number, length: number) => boolean = () => true) {
  const events: Array<{ frame: Delivered } | { start: [number, number, number] } | { piece: number[]; last: boolean; view: boolean }> = [];
  let pushed: Uint8Array = new Uint8Array(0);
  const decoder = new FrameDecoder((type, flags, streamId, payload) => events.push({ frame: { type, flags, streamId, payload: payload.slice() } }), {
    maxFrameBytes: MAX,
    pieces: {
      startData(flags, streamId, length) {
        const taken = take(flags, streamId, length);
        if (taken) events.push({ start: [flags, streamId, length] });
        return taken;
      },
      dataPiece(piece, last) {
        events.push({ piece: Array.from(piece), last, view: piece.buffer === pushed.buffer && piece.length > 0 });
      },
    },
  });
  return {
    decoder,
    events,
    push(chunk: Uint8Array): void {
      pushed = chunk;
      decoder.push(chunk);
    },
  };
}

void describe('FrameDecoder: DATA payloads in pieces (the pieces option)', () => {
  const data = hex('03 02 00000005 00000006 010203040506'); // DATA, END_STREAM, stream 5, 6 bytes

  void test('a DATA payload split at every offset inside it is handed out as views of the chunks, no copy, the last piece flagged', () => {
    for (let cut = 11; cut < data.length; cut++) {
      const { events, push, decoder } = pieceCollector();
      push(Uint8Array.from(data.subarray(0, cut)));
      push(Uint8Array.from(data.subarray(cut)));
      assert.deepEqual(events, [
        { start: [Flag.END_STREAM, 5, 6] },
        { piece: Array.from(data.subarray(10, cut)), last: false, view: true },
        { piece: Array.from(data.subarray(cut)), last: true, view: true },
      ]);
      assert.equal(decoder.atFrameBoundary, true);
      assert.equal(decoder.framesCompleted, 1);
    }
  });

  void test('one byte at a time: six one-byte pieces, never an empty one, and the frame completes once', () => {
    const { events, push, decoder } = pieceCollector();
    for (const byte of concat(data, hex('07 00 00000000 00000008 0000000000000001'))) push(Uint8Array.of(byte));
    assert.deepEqual(events.filter((e) => 'piece' in e).map((e) => (e as { piece: number[] }).piece), [[1], [2], [3], [4], [5], [6]]);
    assert.deepEqual(events.filter((e) => 'piece' in e && e.last).length, 1);
    assert.equal(events.length, 1 + 6 + 1, 'start, six pieces, then the PING whole');
    assert.equal(decoder.framesCompleted, 2);
  });

  void test('a header that ends its chunk: a payload whole in the next chunk is one whole frame; one that is not is pieces', () => {
    const whole = pieceCollector();
    whole.push(data.subarray(0, 10));
    whole.push(Uint8Array.from(data.subarray(10)));
    assert.deepEqual(whole.events, [{ frame: frame(FrameType.DATA, Flag.END_STREAM, 5, [1, 2, 3, 4, 5, 6]) }]);
    const split = pieceCollector();
    split.push(data.subarray(0, 10));
    split.push(Uint8Array.from(data.subarray(10, 13)));
    split.push(Uint8Array.from(data.subarray(13)));
    assert.deepEqual(split.events, [
      { start: [Flag.END_STREAM, 5, 6] },
      { piece: [1, 2, 3], last: false, view: true },
      { piece: [4, 5, 6], last: true, view: true },
    ]);
  });

  void test('a DATA frame pieces declines, and any other type that straddles, are assembled and delivered whole as before', () => {
    const end = hex('04 00 00000005 00000002 0000');
    const { events, push } = pieceCollector((_flags, streamId) => streamId !== 7);
    const bytes = concat(hex('03 00 00000007 00000003 aabbcc'), end);
    push(bytes.subarray(0, 12));
    push(bytes.subarray(12, 24));
    push(bytes.subarray(24));
    assert.deepEqual(events, [{ frame: frame(FrameType.DATA, 0, 7, [0xaa, 0xbb, 0xcc]) }, { frame: frame(FrameType.END, 0, 5, [0, 0]) }]);
  });

  void test('a DATA payload that arrives whole in its chunk is one frame, never pieces', () => {
    const { events, push } = pieceCollector();
    push(data);
    assert.deepEqual(events, [{ frame: frame(FrameType.DATA, Flag.END_STREAM, 5, [1, 2, 3, 4, 5, 6]) }]);
  });

  void test('T-F3 an oversize DATA frame is refused at its header: pieces is never asked', () => {
    const { events, decoder } = pieceCollector();
    assert.throws(() => decoder.push(hex(`03 00 00000001 ${(MAX + 1).toString(16).padStart(8, '0')} 00`)), (err: unknown) => {
      assert.ok(err instanceof ProtocolError);
      assert.equal(err.code, ProtocolErrorCode.FRAME_SIZE);
      return true;
    });
    assert.deepEqual(events, []);
  });

  void test('an error thrown by startData or dataPiece leaves push()', () => {
    const refusing = new FrameDecoder(() => undefined, {
      maxFrameBytes: MAX,
      pieces: {
        startData: () => {
          throw new ProtocolError(ProtocolErrorCode.FLOW_CONTROL, 'over credit');
        },
        dataPiece: () => undefined,
      },
    });
    assert.throws(() => refusing.push(data.subarray(0, 12)), /over credit/);
    const failingPiece = new FrameDecoder(() => undefined, {
      maxFrameBytes: MAX,
      pieces: {
        startData: () => true,
        dataPiece: () => {
          throw new Error('reader failed');
        },
      },
    });
    assert.throws(() => failingPiece.push(data.subarray(0, 12)), /reader failed/);
  });

  void test('T-F6 with pieces taken for every DATA frame, the fixture split at every offset gives the same frames and payloads', () => {
    const stream = concat(
      hex('03 01 00000001 00000005 68656c6c6f'),
      hex('80 00 00000000 00000003 aabbcc'),
      hex('03 00 00000003 00000004 01020304'),
      hex('07 00 00000000 00000008 0102030405060708'),
      hex('03 02 00000003 00000002 0506'),
    );
    const wholeFrames = decodeAll(stream);
    for (let cut = 0; cut <= stream.length; cut++) {
      const { events, push } = pieceCollector();
      push(stream.subarray(0, cut));
      push(stream.subarray(cut));
      // pieces put back together into their frames
      const rebuilt: Delivered[] = [];
      let open: { flags: number; streamId: number; bytes: number[] } | undefined;
      for (const e of events) {
        if ('frame' in e) rebuilt.push(e.frame);
        else if ('start' in e) open = { flags: e.start[0], streamId: e.start[1], bytes: [] };
        else {
          open!.bytes.push(...e.piece);
          if (e.last) {
            rebuilt.push(frame(FrameType.DATA, open!.flags, open!.streamId, open!.bytes));
            open = undefined;
          }
        }
      }
      assert.deepEqual(rebuilt, wholeFrames, `split at ${cut}`);
    }
  });
});

void describe('FrameDecoder: refused headers', () => {
  void test('T-F3 refuses a frame declaring 4 GiB (length 0xffffffff) from its 10 header bytes alone', () => {
    assertRefused([hex('03 00 00000001 ffffffff')], ProtocolErrorCode.FRAME_SIZE);
  });

  void test('T-F3 refuses a frame declaring maxFrameBytes+1 before reading its payload', () => {
    assertRefused([hex('03 00 00000001 00010001')], ProtocolErrorCode.FRAME_SIZE);
  });

  void test('T-F3 refuses an oversize frame when its header arrives one byte at a time, on the 10th byte', () => {
    const header = hex('02 00 00000001 00100000');
    const chunks = Array.from(header, (b) => Uint8Array.of(b));
    assertRefused(chunks, ProtocolErrorCode.FRAME_SIZE);
  });

  void test('T-F3 refuses an oversize extension frame instead of skipping 4 GiB of it', () => {
    assertRefused([hex('80 00 00000000 ffffffff')], ProtocolErrorCode.FRAME_SIZE);
  });

  void test('refuses an oversize PING as FRAME_SIZE and maps it to GOAWAY FRAME_SIZE_ERROR', () => {
    const { decoder } = collector({ maxFrameBytes: 4 });
    assert.throws(
      () => decoder.push(hex('07 00 00000000 00000008')),
      (err: unknown) => err instanceof ProtocolError && err.code === ProtocolErrorCode.FRAME_SIZE && err.connectionCode === ConnectionCode.FRAME_SIZE_ERROR,
    );
  });

  void test('delivers the frames before an oversize one, then refuses it', () => {
    const frames = assertRefused([hex('03 00 00000001 00000001 09  03 00 00000001 7fffffff')], ProtocolErrorCode.FRAME_SIZE);
    assert.deepEqual(frames, [frame(FrameType.DATA, 0, 1, [9])]);
  });

  void test('refuses a stream id with the reserved top bit set (DATA, CREDIT and extension frames)', () => {
    assertRefused([hex('03 00 80000001 00000000')], ProtocolErrorCode.BAD_STREAM_ID);
    assertRefused([hex('06 00 80000000 00000004')], ProtocolErrorCode.BAD_STREAM_ID);
    assertRefused([hex('80 00 ffffffff 00000000')], ProtocolErrorCode.BAD_STREAM_ID);
  });

  for (const type of [0x00, 0x09, 0x10, 0x7f]) {
    void test(`refuses unknown non-extension frame type 0x${type.toString(16).padStart(2, '0')}`, () => {
      assertRefused([concat(Uint8Array.of(type), hex('00 00000000 00000000'))], ProtocolErrorCode.UNKNOWN_FRAME_TYPE);
    });
  }

  for (const length of [0, 7, 9]) {
    void test(`refuses a PING whose payload is ${length} bytes instead of 8`, () => {
      const header = hex(`07 00 00000000 ${length.toString(16).padStart(8, '0')}`);
      assertRefused([header], ProtocolErrorCode.MALFORMED_FRAME);
    });
  }

  for (const length of [0, 3, 5]) {
    void test(`refuses a CREDIT whose payload is ${length} bytes instead of 4`, () => {
      const header = hex(`06 00 00000001 ${length.toString(16).padStart(8, '0')}`);
      assertRefused([header], ProtocolErrorCode.MALFORMED_FRAME);
    });
  }

  for (const [name, type] of [
    ['OPEN', FrameType.OPEN],
    ['DATA', FrameType.DATA],
    ['END', FrameType.END],
    ['RESET', FrameType.RESET],
  ] as const) {
    void test(`refuses ${name} on stream 0 (the connection)`, () => {
      assertRefused([concat(Uint8Array.of(type), hex('00 00000000 00000000'))], ProtocolErrorCode.BAD_STREAM_ID);
    });
  }

  for (const [name, type, length] of [
    ['HELLO', FrameType.HELLO, 0],
    ['PING', FrameType.PING, 8],
    ['GOAWAY', FrameType.GOAWAY, 10],
  ] as const) {
    void test(`refuses connection frame ${name} on stream 1`, () => {
      const header = new Uint8Array(10);
      header[0] = type;
      header[5] = 1;
      header[9] = length;
      assertRefused([header], ProtocolErrorCode.BAD_STREAM_ID);
    });
  }
});

void describe('FrameDecoder: handshake guard (expectHelloFirst)', () => {
  void test('T-Z3 refuses a PING sent before HELLO', () => {
    assertRefused([hex('07 00 00000000 00000008')], ProtocolErrorCode.BAD_HANDSHAKE, { expectHelloFirst: true });
  });

  void test('T-Z3 refuses a DATA frame sent before HELLO', () => {
    assertRefused([hex('03 00 00000001 00000000')], ProtocolErrorCode.BAD_HANDSHAKE, { expectHelloFirst: true });
  });

  void test('T-Z4 refuses an HTTP client ("GET / HTTP/1.1\\r\\n") as BAD_HANDSHAKE, not as an oversize frame', () => {
    const http = Uint8Array.from(Buffer.from('GET / HTTP/1.1\r\n', 'latin1'));
    assertRefused([http], ProtocolErrorCode.BAD_HANDSHAKE, { expectHelloFirst: true });
  });

  void test('T-Z4 refuses a TLS ClientHello as BAD_HANDSHAKE', () => {
    assertRefused([hex('16 03 01 0200 010001fc 0303')], ProtocolErrorCode.BAD_HANDSHAKE, { expectHelloFirst: true });
  });

  void test('refuses a HELLO on a nonzero stream as BAD_HANDSHAKE', () => {
    assertRefused([hex('01 00 00000001 00000000')], ProtocolErrorCode.BAD_HANDSHAKE, { expectHelloFirst: true });
  });

  void test('accepts HELLO first, then any valid frame', () => {
    const frames = decodeAll(hex('01 00 00000000 00000002 abcd  07 00 00000000 00000008 0000000000000000'), { expectHelloFirst: true });
    assert.deepEqual(
      frames.map((f) => f.type),
      [FrameType.HELLO, FrameType.PING],
    );
  });

  void test('without expectHelloFirst, a PING first is accepted', () => {
    assert.equal(decodeAll(hex('07 00 00000000 00000008 0000000000000000')).length, 1);
  });

  void test('T-Z3 acceptGoawayFirst (a dialer): the acceptor\'s GOAWAY may come instead of its HELLO; a PING first still may not', () => {
    const goaway = hex('08 00 00000000 0000000a 00000000 00000009 0000');
    assert.deepEqual(decodeAll(goaway, { expectHelloFirst: true, acceptGoawayFirst: true }).map((f) => f.type), [FrameType.GOAWAY]);
    assertRefused([goaway], ProtocolErrorCode.BAD_HANDSHAKE, { expectHelloFirst: true });
    assertRefused([hex('07 00 00000000 00000008 0000000000000000')], ProtocolErrorCode.BAD_HANDSHAKE, { expectHelloFirst: true, acceptGoawayFirst: true });
  });

  void test('T-Z3 allowOnly([GOAWAY]) (a dialer being admitted): a PING, a DATA header or an extension frame is BAD_HANDSHAKE naming why; allowAll() lifts it', () => {
    for (const bytes of ['07 00 00000000 00000008 0000000000000000', '03 00 00000001 00100000', '80 00 00000000 00000000']) {
      const { decoder, frames } = collector({ expectHelloFirst: true });
      decoder.push(hex('01 00 00000000 00000000'));
      decoder.allowOnly([FrameType.GOAWAY], 'sent before the peer was admitted');
      assert.throws(() => decoder.push(hex(bytes)), (e: unknown) => e instanceof ProtocolError && e.code === ProtocolErrorCode.BAD_HANDSHAKE && /sent before the peer was admitted/.test(e.message), bytes);
      assert.deepEqual(frames.map((f) => f.type), [FrameType.HELLO]);
    }
    const { decoder, frames } = collector({ expectHelloFirst: true });
    decoder.push(hex('01 00 00000000 00000000'));
    decoder.allowOnly([FrameType.GOAWAY], 'sent before the peer was admitted');
    decoder.allowAll();
    decoder.push(hex('07 00 00000000 00000008 0000000000000000'));
    assert.deepEqual(frames.map((f) => f.type), [FrameType.HELLO, FrameType.PING]);
  });

  void test('allowOnly() with no type, or a type its mask cannot hold (32 or more), is a RangeError: it must never mean "allow everything"', () => {
    const { decoder } = collector({ expectHelloFirst: true });
    assert.throws(() => decoder.allowOnly([], 'nothing'), RangeError);
    assert.throws(() => decoder.allowOnly([FrameType.GOAWAY, 32], 'too high'), RangeError);
    assert.throws(() => decoder.allowOnly([-1], 'negative'), RangeError);
  });
});

void describe('FrameDecoder: memory', () => {
  void test('T-F3 a header declaring maxFrameBytes followed by 1 payload byte neither throws nor delivers anything', () => {
    const { decoder, frames } = collector();
    decoder.push(concat(hex('03 00 00000001 00010000'), Uint8Array.of(1)));
    assert.deepEqual(frames, []);
    assert.equal(decoder.atFrameBoundary, false);
  });

  void test('T-F3 a pending 8 MiB frame with 1 byte received holds at most maxFrameBytes of buffers', () => {
    const max = 8 * 1024 * 1024;
    const { decoder, frames } = collector({ maxFrameBytes: max });
    const header = hex('03 00 00000001 00800000');
    const before = process.memoryUsage().arrayBuffers;
    decoder.push(concat(header, Uint8Array.of(1)));
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.deepEqual(frames, []);
    assert.ok(grown <= max + 64 * 1024, `array buffers grew by ${grown} bytes`);
  });
});
