/**
 * The session layer: stream ids, ping, graceful close and destroy, peers that are not gridwire, the handshake
 * timeout, an "evil peer" that writes frames by hand (wire encoders over a memory pair), and write coalescing.
 */
import assert from 'node:assert/strict';
import { createConnection, createServer, type Server as NetServer, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';

import { connect, createMemoryPair, createSession, defineService, listen, serve, Status, unary, type RpcSession } from '../src/index.js';
import { msgpackCodec } from '../src/rpc/codec.js';
import { Session, type IncomingStream } from '../src/session/session.js';
import type { Stream, StreamTrailer } from '../src/session/stream.js';
import { utf8 } from '../src/wire/bytes.js';
import { ConnectionCode, connectionCodeName, Flag, FrameType } from '../src/wire/constants.js';
import { FrameDecoder } from '../src/wire/decoder.js';
import { ProtocolError, ProtocolErrorCode } from '../src/wire/errors.js';
import { encodeCredit, encodeOpen, encodeReset, decodeGoaway, decodeReset } from '../src/wire/payloads.js';
import {
  countWrites,
  deferred,
  destroyAfter,
  helloFrame,
  RawPeer,
  rejectsWithStatus,
  sleep,
  socketPath,
  testConnTypes,
  trackTimers,
  until,
  within,
  type RawFrame,
} from './helpers.js';

// ---------------------------------------------------------------- session-level plumbing

/** Hooks that answer every incoming stream with its request bytes, then release it. */
function echoHooks(seen: IncomingStream[] = []): { hooks: { onStream(incoming: IncomingStream): void }; bind(session: Session): void } {
  let session: Session | undefined;
  return {
    bind: (s) => (session = s),
    hooks: {
      onStream(incoming) {
        seen.push(incoming);
        const { stream } = incoming;
        stream.events = {
          onMessage: (bytes) => stream.sendMessage(new Uint8Array(bytes), true),
          onEnd: () => session?.release(stream),
          onReset: () => session?.release(stream),
        };
      },
    },
  };
}

interface Outcome {
  messages: Uint8Array[];
  trailer?: StreamTrailer;
  reset?: { status: Status; message: string; refused: boolean };
}

/** Collects what the peer sends on a stream we opened, until it ends or is reset. */
function collect(stream: Stream): Promise<Outcome> {
  const done = deferred<Outcome>();
  const outcome: Outcome = { messages: [] };
  stream.events = {
    onMessage: (bytes) => outcome.messages.push(new Uint8Array(bytes)),
    onEnd: (trailer) => done.resolve({ ...outcome, trailer }),
    onReset: (status, message, refused) => done.resolve({ ...outcome, reset: { status, message, refused } }),
  };
  return done.promise;
}

/** Two core Sessions over a memory pair, both echoing; destroyed after the test. */
async function sessionPair(t: TestContext): Promise<{ dialer: Session; acceptor: Session; seenByDialer: IncomingStream[]; seenByAcceptor: IncomingStream[] }> {
  const [a, b] = createMemoryPair();
  const seenByDialer: IncomingStream[] = [];
  const seenByAcceptor: IncomingStream[] = [];
  const d = echoHooks(seenByDialer);
  const ac = echoHooks(seenByAcceptor);
  const dialer = new Session(a, 'dialer', d.hooks);
  const acceptor = new Session(b, 'acceptor', ac.hooks);
  d.bind(dialer);
  ac.bind(acceptor);
  t.after(() => {
    dialer.destroy();
    acceptor.destroy();
  });
  await within(Promise.all([dialer.ready, acceptor.ready]), 1000, 'handshake');
  return { dialer, acceptor, seenByDialer, seenByAcceptor };
}

// ---------------------------------------------------------------- rpc-level services

const Echo = defineService('test.Echo', {
  echo: unary<unknown, unknown>(),
  /** Waits until the test opens the gate. */
  gated: unary<string, string>(),
  /** Never answers: waits for its signal. */
  hang: unary<null, never>(),
});

interface EchoHooks {
  /** What `gated` waits for. */
  gate?: Promise<void>;
  /** Called when a `gated` or `hang` handler starts. */
  onStart?: () => void;
  /** Called with ctx.signal.reason when a `hang` handler is aborted. */
  onAbort?: (reason: unknown) => void;
}

function echoService(hooks: EchoHooks = {}): ReturnType<typeof serve> {
  return serve(Echo, {
    echo: (value) => value,
    gated: async (text) => {
      hooks.onStart?.();
      await hooks.gate;
      return `done ${text}`;
    },
    hang: (_req, ctx) => {
      hooks.onStart?.();
      return new Promise<never>((_, reject) =>
        ctx.signal.addEventListener('abort', () => {
          hooks.onAbort?.(ctx.signal.reason);
          reject(ctx.signal.reason as Error);
        }),
      );
    },
  });
}

// ---------------------------------------------------------------- tests

void describe('session: streams and ping', () => {
  void test('stream ids are odd for the dialer, even for the acceptor, and strictly increasing', { timeout: 5000 }, async (t) => {
    const { dialer, acceptor, seenByDialer, seenByAcceptor } = await sessionPair(t);
    const method = utf8('test/echo');
    const fromDialer = [1, 2, 3].map(() => dialer.openStream(method));
    const fromAcceptor = [1, 2, 3].map(() => acceptor.openStream(method));
    assert.deepEqual(
      fromDialer.map((s) => s.id),
      [1, 3, 5],
    );
    assert.deepEqual(
      fromAcceptor.map((s) => s.id),
      [2, 4, 6],
    );
    const outcomes = [...fromDialer, ...fromAcceptor].map((stream, i) => {
      const done = collect(stream);
      stream.sendMessage(Uint8Array.of(i), true);
      return done;
    });
    const results = await within(Promise.all(outcomes), 2000, 'echoes');
    results.forEach((r, i) => {
      assert.deepEqual(r.messages, [Uint8Array.of(i)]);
      assert.equal(r.trailer?.status, Status.OK);
    });
    assert.deepEqual(
      seenByAcceptor.map((s) => s.stream.id),
      [1, 3, 5],
    );
    assert.deepEqual(
      seenByDialer.map((s) => s.stream.id),
      [2, 4, 6],
    );
    assert.ok(seenByAcceptor.every((s) => s.method === 'test/echo'));
    await until(() => dialer.streamCount === 0 && acceptor.streamCount === 0, 1000, 'stream tables empty');
  });

  void test('ping returns a finite RTT, from either side', { timeout: 5000 }, async (t) => {
    const { dialer, acceptor } = await sessionPair(t);
    for (const session of [dialer, acceptor]) {
      const rtt = await within(session.ping(), 1000, 'ping');
      assert.ok(Number.isFinite(rtt) && rtt >= 0, `rtt ${rtt}`);
      assert.equal(session.rttMs, rtt);
    }
    const many = await within(Promise.all(Array.from({ length: 10 }, () => dialer.ping())), 1000, 'pings');
    assert.ok(many.every((rtt) => Number.isFinite(rtt)));
    dialer.destroy();
    await assert.rejects(dialer.ping(), (e: unknown) => (e as { status?: number }).status === Status.UNAVAILABLE);
  });
});

void describe('session: close and destroy', () => {
  for (const closer of ['caller', 'callee'] as const) {
    testConnTypes(
      `graceful close() by the ${closer}: in-flight calls in both directions complete, new calls are UNAVAILABLE, closed resolves undefined`,
      async (env) => {
        const gate = deferred();
        let started = 0;
        const hooks: EchoHooks = { gate: gate.promise, onStart: () => started++ };
        const { caller, callee } = await env.open({ services: [echoService(hooks)], callerServices: [echoService(hooks)] });
        const forward = caller.client(Echo).gated('forward');
        const backward = callee.client(Echo).gated('backward');
        await until(() => started === 2, 2000, 'both calls are with their handlers');
        const closing = closer === 'caller' ? caller : callee;
        const other = closing === caller ? callee : caller;
        const closed = closing.close();
        await rejectsWithStatus(closing.client(Echo).echo(1), Status.UNAVAILABLE, 'new call on the closing side');
        const late = await rejectsWithStatus(other.client(Echo).echo(1), Status.UNAVAILABLE, 'new call on the other side');
        assert.equal(late.retrySafe, true, 'a call the closing side never processed is retry-safe');
        gate.resolve();
        assert.equal(await forward, 'done forward');
        assert.equal(await backward, 'done backward');
        await within(closed, 3000, 'close()');
        assert.equal(await within(caller.closed, 3000, 'caller closed'), undefined);
        assert.equal(await within(callee.closed, 3000, 'callee closed'), undefined);
        await rejectsWithStatus(other.client(Echo).echo(1), Status.UNAVAILABLE, 'a call after the close');
      },
      { timeout: 10_000 },
    );
  }

  for (const who of ['caller', 'callee'] as const) {
    testConnTypes(
      `destroy() by the ${who} fails in-flight calls with UNAVAILABLE promptly, on both sides`,
      async (env) => {
        const handlerAborted = deferred<unknown>();
        const handlerStarted = deferred();
        const { caller, callee } = await env.open({ services: [echoService({ onStart: handlerStarted.resolve, onAbort: handlerAborted.resolve })] });
        const call = caller.client(Echo).hang(null);
        await within(handlerStarted.promise, 2000, 'the handler started');
        const start = performance.now();
        (who === 'caller' ? caller : callee).destroy();
        await rejectsWithStatus(call, Status.UNAVAILABLE);
        const elapsed = performance.now() - start;
        assert.ok(elapsed < 500, `failed after ${elapsed.toFixed(1)} ms`);
        const reason = await within(handlerAborted.promise, 1000, "the handler's signal");
        assert.equal((reason as { code?: number }).code, Status.UNAVAILABLE);
        await within(Promise.all([caller.closed, callee.closed]), 3000, 'both sides closed');
        await rejectsWithStatus(caller.client(Echo).echo(1), Status.UNAVAILABLE, 'a call after destroy');
      },
      { timeout: 10_000, kinds: ['memory', 'tcp'] },
    );
  }

  void test('transport loss (memory transport destroyed underneath) fails in-flight calls with UNAVAILABLE', { timeout: 5000 }, async (t) => {
    const [a, b] = createMemoryPair();
    const caller = createSession(a, 'dialer');
    const handlerStarted = deferred();
    const callee = createSession(b, 'acceptor', { services: [echoService({ onStart: handlerStarted.resolve })] });
    t.after(() => {
      caller.destroy();
      callee.destroy();
    });
    await Promise.all([caller.ready, callee.ready]);
    const call = caller.client(Echo).hang(null);
    await within(handlerStarted.promise, 2000, 'the handler started');
    b.destroy(new Error('cable cut'));
    await rejectsWithStatus(call, Status.UNAVAILABLE);
    const error = await within(caller.closed, 1000, 'caller closed');
    assert.ok(error instanceof Error, 'closed resolves with the error that closed it');
  });
});

void describe('session: peers that are not gridwire', () => {
  void test('an HTTP request to a listen() port is closed; the server keeps working', { timeout: 5000 }, async (t) => {
    const server = await listen('tcp://127.0.0.1:0', { services: [echoService()] });
    t.after(() => server.close({ graceMs: 0 }));
    const { socket, received, closed } = plainSocketTo(t, server.url);
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await within(closed, 3000, 'the server closes the HTTP client');
    const frames = decodeAll(Buffer.concat(received));
    assert.equal(frames[0]?.type, FrameType.HELLO, 'the server spoke first with its HELLO');
    const goaway = frames.find((f) => f.type === FrameType.GOAWAY);
    assert.ok(goaway, 'and said GOAWAY');
    assert.equal(decodeGoaway(goaway.payload).code, ConnectionCode.PROTOCOL_ERROR);
    await until(() => server.sessions.size === 0, 2000, 'the failed session is forgotten');
    const client = await connect(server.url);
    t.after(() => client.destroy());
    assert.equal(await client.client(Echo).echo('still serving'), 'still serving');
  });

  void test('connect() to a server that answers with garbage rejects UNAVAILABLE, naming the handshake', { timeout: 5000 }, async (t) => {
    const sockets = new Set<Socket>();
    const plain: NetServer = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.write('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
    });
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    t.after(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => plain.close(resolve));
    });
    const { port } = plain.address() as { port: number };
    const error = await rejectsWithStatus(connect(`tcp://127.0.0.1:${port}`), Status.UNAVAILABLE);
    assert.match(error.message, /handshake/);
  });

  void test('connect() to a server that says nothing fails after handshakeTimeoutMs', { timeout: 5000 }, async (t) => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    const path = socketPath();
    await new Promise<void>((resolve) => silent.listen(path, resolve));
    t.after(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    });
    const start = performance.now();
    const error = await rejectsWithStatus(connect(`unix://${path}`, { handshakeTimeoutMs: 200 }), Status.UNAVAILABLE);
    const elapsed = performance.now() - start;
    assert.match(error.message, /handshake/);
    assert.ok(elapsed >= 190 && elapsed < 1500, `gave up after ${elapsed.toFixed(0)} ms`);
  });

  void test('an onSession callback that throws closes that session, with no unhandled rejection; the server keeps accepting', { timeout: 5000 }, async (t) => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    t.after(() => {
      process.off('unhandledRejection', onUnhandled);
    });
    let accepted = 0;
    const server = await listen('tcp://127.0.0.1:0', {
      services: [echoService()],
      onSession: () => {
        if (++accepted === 1) throw new Error('bug in onSession');
      },
    });
    t.after(() => server.close({ graceMs: 0 }));
    const first = await connect(server.url);
    t.after(() => first.destroy());
    await within(first.closed, 2000, 'the session whose onSession threw is closed');
    const second = await connect(server.url);
    t.after(() => second.destroy());
    assert.equal(await second.client(Echo).echo('next'), 'next');
    await sleep(10);
    assert.deepEqual(unhandled, []);
  });

  void test('a raw socket that connects and says nothing is closed after handshakeTimeoutMs', { timeout: 5000 }, async (t) => {
    const server = await listen('tcp://127.0.0.1:0', { services: [echoService()], handshakeTimeoutMs: 200 });
    t.after(() => server.close({ graceMs: 0 }));
    const { socket, received, closed } = plainSocketTo(t, server.url);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const start = performance.now();
    await within(closed, 3000, 'the silent socket is closed');
    const elapsed = performance.now() - start;
    assert.ok(elapsed >= 150 && elapsed < 1500, `closed after ${elapsed.toFixed(0)} ms (handshakeTimeoutMs 200)`);
    const goaway = decodeAll(Buffer.concat(received)).find((f) => f.type === FrameType.GOAWAY);
    assert.ok(goaway);
    assert.equal(decodeGoaway(goaway.payload).code, ConnectionCode.HANDSHAKE_TIMEOUT);
    await until(() => server.sessions.size === 0, 2000, 'the session is forgotten');
  });
});

/** A plain TCP socket (no gridwire) to a listen() address, recording what the server sends; destroyed after the test. */
function plainSocketTo(t: TestContext, url: string): { socket: Socket; received: Buffer[]; closed: Promise<void> } {
  const port = Number(new URL(url.replace('tcp:', 'http:')).port);
  const socket = destroyAfter(t, createConnection({ host: '127.0.0.1', port }));
  const received: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => received.push(chunk));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  return { socket, received, closed };
}

// ---------------------------------------------------------------- evil peer

function decodeAll(bytes: Uint8Array): RawFrame[] {
  const frames: RawFrame[] = [];
  const decoder = new FrameDecoder((type, flags, streamId, payload) => frames.push({ type, flags, streamId, payload: payload.slice() }), {
    maxFrameBytes: 16 * 1024 * 1024,
  });
  decoder.push(bytes);
  return frames;
}

interface Victim {
  raw: RawPeer;
  session: RpcSession;
  aborted: unknown[];
}

/** An RpcSession (acceptor unless said otherwise) facing a RawPeer that has sent its HELLO. */
async function victim(t: TestContext, options: Parameters<typeof createSession>[2] = {}, role: 'acceptor' | 'dialer' = 'acceptor'): Promise<Victim> {
  const [rawEnd, sessionEnd] = createMemoryPair();
  const aborted: unknown[] = [];
  const session = createSession(sessionEnd, role, { services: [echoService({ onAbort: (r) => aborted.push(r) })], ...options });
  t.after(() => session.destroy());
  const raw = new RawPeer(rawEnd);
  raw.sendBytes(helloFrame());
  await within(session.ready, 1000, 'handshake');
  return { raw, session, aborted };
}

/** Asserts that the victim closed the connection with GOAWAY `code` and a ProtocolError `protocolCode`. */
async function assertConnectionError(v: Victim, code: ConnectionCode, protocolCode: ProtocolErrorCode): Promise<void> {
  const goaway = await v.raw.waitFor((f) => f.type === FrameType.GOAWAY, 1000, 'GOAWAY');
  const decoded = decodeGoaway(goaway.payload);
  assert.equal(decoded.code, code, `GOAWAY ${connectionCodeName(decoded.code)}: ${decoded.message}`);
  const error = await within(v.session.closed, 3000, 'the victim closes');
  assert.ok(error instanceof ProtocolError, `closed with ${String(error)}`);
  assert.equal(error.code, protocolCode);
  await within(v.raw.ended.promise, 1000, 'the raw peer sees the end');
}

const ECHO = utf8('test.Echo/echo');
const HANG = utf8('test.Echo/hang');
const request = (value: unknown): Uint8Array => msgpackCodec.encode(value);
const END_OF_REQUEST = Flag.MESSAGE_END | Flag.END_STREAM;

void describe('session: evil peer', () => {
  void test('DATA on a never-opened stream: GOAWAY PROTOCOL_ERROR', { timeout: 5000 }, async (t) => {
    const v = await victim(t);
    v.raw.send(FrameType.DATA, END_OF_REQUEST, 7, request('x'));
    await assertConnectionError(v, ConnectionCode.PROTOCOL_ERROR, ProtocolErrorCode.STREAM_NOT_OPEN);
  });

  void test('CREDIT of 0: GOAWAY FLOW_CONTROL_ERROR (connection and stream)', { timeout: 5000 }, async (t) => {
    const v = await victim(t);
    v.raw.send(FrameType.CREDIT, 0, 0, encodeCredit(0));
    await assertConnectionError(v, ConnectionCode.FLOW_CONTROL_ERROR, ProtocolErrorCode.FLOW_CONTROL);

    const w = await victim(t);
    w.raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, HANG));
    w.raw.send(FrameType.DATA, END_OF_REQUEST, 1, request(null));
    w.raw.send(FrameType.CREDIT, 0, 1, encodeCredit(0));
    await assertConnectionError(w, ConnectionCode.FLOW_CONTROL_ERROR, ProtocolErrorCode.FLOW_CONTROL);
  });

  void test('DATA beyond the stream window: GOAWAY FLOW_CONTROL_ERROR', { timeout: 5000 }, async (t) => {
    const v = await victim(t, { initialStreamWindow: 16 * 1024 });
    v.raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, ECHO));
    v.raw.send(FrameType.DATA, 0, 1, new Uint8Array(16 * 1024 + 1));
    await assertConnectionError(v, ConnectionCode.FLOW_CONTROL_ERROR, ProtocolErrorCode.FLOW_CONTROL);
  });

  void test('OPEN with the wrong parity: GOAWAY PROTOCOL_ERROR', { timeout: 5000 }, async (t) => {
    const v = await victim(t); // the raw peer is the dialer: its ids must be odd
    v.raw.send(FrameType.OPEN, 0, 2, encodeOpen(0, 0, ECHO));
    await assertConnectionError(v, ConnectionCode.PROTOCOL_ERROR, ProtocolErrorCode.BAD_STREAM_ID);

    const w = await victim(t, {}, 'dialer'); // the raw peer is the acceptor: its ids must be even
    w.raw.send(FrameType.OPEN, 0, 3, encodeOpen(0, 0, ECHO));
    await assertConnectionError(w, ConnectionCode.PROTOCOL_ERROR, ProtocolErrorCode.BAD_STREAM_ID);
  });

  void test('OPEN with a non-increasing id: GOAWAY PROTOCOL_ERROR', { timeout: 5000 }, async (t) => {
    const v = await victim(t);
    v.raw.send(FrameType.OPEN, 0, 5, encodeOpen(0, 0, ECHO));
    v.raw.send(FrameType.DATA, END_OF_REQUEST, 5, request(5));
    await v.raw.waitFor((f) => f.streamId === 5 && f.type === FrameType.DATA, 1000, 'the answer on stream 5');
    v.raw.send(FrameType.OPEN, 0, 3, encodeOpen(0, 0, ECHO));
    await assertConnectionError(v, ConnectionCode.PROTOCOL_ERROR, ProtocolErrorCode.BAD_STREAM_ID);

    const w = await victim(t);
    w.raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, HANG));
    w.raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, HANG)); // the same id again
    await assertConnectionError(w, ConnectionCode.PROTOCOL_ERROR, ProtocolErrorCode.BAD_STREAM_ID);
  });

  void test('OPEN with malformed metadata: only that stream is RESET (INTERNAL); a following call works', { timeout: 5000 }, async (t) => {
    const v = await victim(t);
    // one entry, key "BAD" (upper case is not allowed), text value "x"
    const badBlock = Uint8Array.of(1, 3, 0x42, 0x41, 0x44, 0, 0, 1, 0x78);
    v.raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, ECHO, badBlock));
    v.raw.send(FrameType.DATA, END_OF_REQUEST, 1, request('lost')); // in flight already: ignored
    const reset = await v.raw.waitFor((f) => f.type === FrameType.RESET && f.streamId === 1, 1000, 'RESET on stream 1');
    assert.equal(decodeReset(reset.payload).status, Status.INTERNAL);
    assert.equal(reset.flags & Flag.REFUSED, 0);
    v.raw.send(FrameType.OPEN, 0, 3, encodeOpen(0, 0, ECHO));
    v.raw.send(FrameType.DATA, END_OF_REQUEST, 3, request({ ok: true }));
    const answer = await v.raw.waitFor((f) => f.type === FrameType.DATA && f.streamId === 3, 1000, 'the answer on stream 3');
    assert.equal(answer.flags & END_OF_REQUEST, END_OF_REQUEST);
    assert.deepEqual(msgpackCodec.decode(answer.payload), { ok: true });
    assert.equal(v.session.core.isOpen, true);
    assert.equal(v.raw.ofType(FrameType.GOAWAY).length, 0);
  });

  void test('more concurrent OPENs than maxConcurrentStreams: RESET with the REFUSED flag; a freed slot is reused', { timeout: 5000 }, async (t) => {
    const v = await victim(t, { maxConcurrentStreams: 2 });
    for (const id of [1, 3, 5]) {
      v.raw.send(FrameType.OPEN, 0, id, encodeOpen(0, 0, HANG));
      v.raw.send(FrameType.DATA, END_OF_REQUEST, id, request(null));
    }
    const refused = await v.raw.waitFor((f) => f.type === FrameType.RESET && f.streamId === 5, 1000, 'RESET on stream 5');
    assert.equal(refused.flags & Flag.REFUSED, Flag.REFUSED);
    assert.equal(decodeReset(refused.payload).status, Status.UNAVAILABLE);
    assert.equal(v.raw.frames.filter((f) => f.type === FrameType.RESET && f.streamId !== 5).length, 0, 'streams 1 and 3 run');
    // cancel stream 1: once its handler has returned, its slot takes a new stream
    v.raw.send(FrameType.RESET, 0, 1, encodeReset(Status.CANCELLED, 'never mind'));
    await until(() => v.aborted.length === 1, 1000, 'the handler of stream 1 aborted');
    await sleep(10);
    const before = v.raw.frames.length;
    v.raw.send(FrameType.OPEN, 0, 7, encodeOpen(0, 0, ECHO));
    v.raw.send(FrameType.DATA, END_OF_REQUEST, 7, request(7));
    const answer = await v.raw.waitFor((f) => f.streamId === 7, 1000, 'a frame on stream 7', before);
    assert.equal(answer.type, FrameType.DATA, 'stream 7 is served, not refused');
    assert.equal(msgpackCodec.decode(answer.payload), 7);
  });
});

void describe('session: write coalescing and timers', () => {
  void test('64 calls issued in one tick share a few transport writes; nothing is left running afterwards', { timeout: 5000 }, async () => {
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const timers = trackTimers();
    try {
      const [a, b] = createMemoryPair();
      const callerWrites = countWrites(a);
      const calleeWrites = countWrites(b);
      const caller = createSession(a, 'dialer');
      const callee = createSession(b, 'acceptor', { services: [echoService()] });
      try {
        await within(Promise.all([caller.ready, callee.ready]), 1000, 'handshake');
        await sleep(5);
        callerWrites.reset();
        calleeWrites.reset();
        const echo = caller.client(Echo).echo;
        const results = await within(Promise.all(Array.from({ length: 64 }, (_, i) => echo(i))), 2000, '64 calls');
        assert.deepEqual(results, Array.from({ length: 64 }, (_, i) => i));
        assert.ok(callerWrites.writes <= 4, `64 calls took ${callerWrites.writes} transport writes on the caller`);
        assert.ok(calleeWrites.writes <= 4, `64 responses took ${calleeWrites.writes} transport writes on the callee`);
        // a deadline and a ping, so their timers are in play too
        assert.equal(await echo('timed', { timeoutMs: 1000 }), 'timed');
        await caller.ping();
        await within(caller.close(), 3000, 'graceful close');
        assert.equal(await within(callee.closed, 3000, 'callee closed'), undefined);
      } finally {
        caller.destroy();
        callee.destroy();
      }
      await sleep(5);
      assert.deepEqual(
        timers.live().filter((where) => where.includes('/src/')),
        [],
        'every timer the sessions started was cleared or has fired',
      );
    } finally {
      timers.stop();
    }
    const timersAfter = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    assert.ok(timersAfter <= timersBefore, `active timers: ${timersBefore} before, ${timersAfter} after`);
  });
});
