/**
 * The HELLO handshake over real sockets: protocol version negotiation in both directions (GOAWAY VERSION_MISMATCH with
 * both ranges, a FAILED_PRECONDITION for connect()), peers that are not gridwire (random bytes, an HTTP request or
 * response, silence until handshakeTimeoutMs), and the server's log of them: each is closed with a GOAWAY, logged once
 * with the peer's address, and the server keeps serving.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createConnection, createServer, type Server as NetServer, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';

import { connect, listen, Status, type ListenOptions } from '../../src/index.js';
import { listenOn } from '../../src/transport/net.js';
import { ConnectionCode, FrameType } from '../../src/wire/constants.js';
import { FrameDecoder } from '../../src/wire/decoder.js';
import { ProtocolError, ProtocolErrorCode } from '../../src/wire/errors.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { encodeHello } from '../../src/wire/hello.js';
import { decodeGoaway } from '../../src/wire/payloads.js';
import { connectTo, goawayOf, oneWarning, rawClient, startServer } from '../fixtures/connections.js';
import { Echo, echoService } from '../fixtures/echo-service.js';
import { Sleepy, sleepyService } from '../fixtures/lifecycle-service.js';
import { deferred, destroyAfter, RAW_HELLO_SETTINGS, RawPeer, rejectsWithStatus, socketPath, until, within, type RawFrame } from '../helpers.js';

const CLEANUP_MS = 3_000;
/** What both sides must say when the ranges do not overlap: we speak 1..1, the peer 2..2. */
const MISMATCH = /ours 1\.\.1, theirs 2\.\.2/;

/** A HELLO frame of a peer that speaks protocol version 2 only. */
function helloV2(): Uint8Array {
  return encodeFrame({
    type: FrameType.HELLO,
    flags: 0,
    streamId: 0,
    payload: encodeHello({ versionMin: 2, versionMax: 2, settings: RAW_HELLO_SETTINGS }),
  });
}

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

function decodeAll(bytes: Uint8Array): RawFrame[] {
  const frames: RawFrame[] = [];
  const decoder = new FrameDecoder((type, flags, streamId, payload) => frames.push({ type, flags, streamId, payload: payload.slice() }), {
    maxFrameBytes: 16 * 1024 * 1024,
  });
  decoder.push(bytes);
  return frames;
}

// ---------------------------------------------------------------- tests

void describe('handshake: protocol version mismatch', () => {
  void test('T-Z4 a peer that speaks only version 2 dials a server: it gets GOAWAY VERSION_MISMATCH "ours 1..1, theirs 2..2" (no HELLO: the server answers only a dialer it admitted) before the close; the server logs one warning naming it and keeps serving', { timeout: 5000 }, async (t) => {
    const { server, logs } = await startServer(t, { services: [sleepyService()] });
    const { raw, address } = await rawClient(t, server.url);
    raw.sendBytes(helloV2());
    await within(raw.ended.promise, 3000, 'the server ends the connection');
    // frames are recorded as their bytes arrive: what is here now arrived before the end
    assert.equal(raw.decodeError, undefined);
    assert.deepEqual(raw.frames.map((f) => f.type), [FrameType.GOAWAY], 'the server answered with its GOAWAY alone, never its HELLO');
    const goaway = goawayOf(raw.frames);
    assert.equal(goaway.code, 'VERSION_MISMATCH', goaway.message);
    assert.match(goaway.message, MISMATCH);
    assert.equal(goaway.index, raw.frames.length - 1, 'nothing follows the GOAWAY');
    await within(raw.closed.promise, 3000, 'the socket closes');

    await until(() => logs.length > 0, 2000, 'the server logs the refused connection');
    const warning = oneWarning(logs);
    assert.ok(warning.includes(address), `the warning names the peer (${address}): ${warning}`);
    assert.match(warning, MISMATCH);
    assert.match(warning, /GW_ERR_VERSION_MISMATCH/);

    await until(() => server.sessions.size === 0, 2000, 'the refused session is forgotten');
    const client = await connectTo(t, server.url);
    assert.equal(await within(client.client(Sleepy).sleep(1), 2000, 'a call afterwards'), 'slept 1');
  });

  void test('T-Z4 connect() to a server that answers with a version-2-only HELLO rejects FAILED_PRECONDITION "ours 1..1, theirs 2..2"; that server receives our GOAWAY VERSION_MISMATCH with the reason', { timeout: 5000 }, async (t) => {
    const peers: RawPeer[] = [];
    const accepted = deferred<RawPeer>();
    const listener = await listenOn('tcp://127.0.0.1:0', (transport) => {
      const raw = new RawPeer(transport);
      peers.push(raw);
      raw.sendBytes(helloV2());
      accepted.resolve(raw);
    });
    t.after(async () => {
      for (const p of peers) p.transport.destroy();
      await within(listener.close(), CLEANUP_MS, 'raw server close');
    });

    const error = await rejectsWithStatus(within(connect(listener.url), 3000, 'connect()'), Status.FAILED_PRECONDITION, 'connect()');
    assert.match(error.message, MISMATCH);
    assert.ok(
      error.cause instanceof ProtocolError && error.cause.code === ProtocolErrorCode.VERSION_MISMATCH,
      `the cause is the ProtocolError: ${String(error.cause)}`,
    );

    const raw = await within(accepted.promise, 1000, 'the raw server accepted');
    await within(raw.ended.promise, 3000, 'the client ends the connection');
    assert.equal(raw.decodeError, undefined);
    assert.equal(raw.frames[0]?.type, FrameType.HELLO, 'the client sent its HELLO first');
    const goaway = goawayOf(raw.frames);
    assert.equal(goaway.code, 'VERSION_MISMATCH', goaway.message);
    assert.match(goaway.message, MISMATCH, "ours is the client's range, theirs the server's");
  });
});

void describe('handshake: peers that are not gridwire are closed, logged, and do not stop the server', () => {
  const firstByteNotHello = (bytes: Buffer): Buffer => {
    bytes[0] = 0xa7; // anything but HELLO (0x01) as the first frame type
    return bytes;
  };
  const cases: Array<{ name: string; bytes?: Uint8Array; options?: ListenOptions; goaway: string; log: RegExp }> = [
    { name: 'random bytes', bytes: firstByteNotHello(randomBytes(256)), goaway: 'PROTOCOL_ERROR', log: /GW_ERR_BAD_HANDSHAKE.*not a gridwire HELLO/ },
    { name: 'an HTTP request', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), goaway: 'PROTOCOL_ERROR', log: /GW_ERR_BAD_HANDSHAKE.*not a gridwire HELLO/ },
    { name: 'nothing at all (handshakeTimeoutMs 200)', options: { handshakeTimeoutMs: 200 }, goaway: 'HANDSHAKE_TIMEOUT', log: /GW_ERR_HANDSHAKE_TIMEOUT.*200 ms/ },
  ];
  for (const c of cases) {
    void test(`T-Z4 ${c.name}: GOAWAY ${c.goaway}, the connection closes, one warn line with the peer address and the reason; a client is served afterwards`, { timeout: 5000 }, async (t) => {
      const { server, logs } = await startServer(t, { services: [sleepyService()], ...c.options });
      const { raw, address } = await rawClient(t, server.url);
      if (c.bytes !== undefined) raw.sendBytes(c.bytes);
      await within(raw.closed.promise, 3000, 'the server closes the connection');
      const goaway = goawayOf(raw.frames);
      assert.equal(goaway.code, c.goaway, goaway.message);

      await until(() => logs.length > 0, 2000, 'the server logs the closed connection');
      const warning = oneWarning(logs);
      assert.ok(warning.includes(address), `the warning names the peer (${address}): ${warning}`);
      assert.match(warning, c.log);

      await until(() => server.sessions.size === 0, 2000, 'the failed session is forgotten');
      const client = await connectTo(t, server.url);
      assert.equal(await within(client.client(Sleepy).sleep(1), 2000, 'a call afterwards'), 'slept 1');
      assert.equal(logs.length, 1, 'a good client is not logged');
    });
  }

  void test('T-Z4 an HTTP request to a listen() port is closed; the server keeps working', { timeout: 5000 }, async (t) => {
    const server = await listen('tcp://127.0.0.1:0', { services: [echoService()] });
    t.after(() => server.close({ graceMs: 0 }));
    const { socket, received, closed } = plainSocketTo(t, server.url);
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await within(closed, 3000, 'the server closes the HTTP client');
    const frames = decodeAll(Buffer.concat(received));
    assert.deepEqual(frames.map((f) => f.type), [FrameType.GOAWAY], 'the server said GOAWAY, and nothing else (no HELLO to a client that sent none)');
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

  void test('T-D10 a raw socket that connects and says nothing is closed after handshakeTimeoutMs', { timeout: 5000 }, async (t) => {
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
