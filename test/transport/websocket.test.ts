/**
 * The WebSocket transport (ws:// and wss://, src/transport/websocket.ts; PROTOCOL.md §14): addresses; calls of every
 * kind in both directions and bulk transfers checked by sha256, over ws:// and over wss:// with mutual TLS; what a
 * client without a certificate, a wrong path, a plain HTTP request or a server that never upgrades get; clean closes;
 * and back pressure: a peer that stops reading makes write() return false and the writer's buffered amount stays
 * bounded while its credit would allow far more, until the write-stall watch closes the connection.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import { createServer, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { createServer as createTlsServer } from 'node:tls';
import { WebSocketServer } from 'ws';

import {
  bidi,
  clientStream,
  connect,
  createSession,
  defineService,
  serve,
  serverStream,
  Status,
  unary,
  type ConnectOptions,
  type ListenOptions,
  type RpcSession,
} from '../../src/index.js';
import { parseAddress } from '../../src/transport/address.js';
import type { Transport } from '../../src/transport/transport.js';
import { dialWebSocket, listenWebSocket } from '../../src/transport/websocket.js';
import { WEBSOCKET_MAX_MESSAGE_BYTES } from '../../src/wire/constants.js';
import { ProtocolError } from '../../src/wire/errors.js';
import { Bulk, MiB, patternChunks, patternSha256, Tally } from '../fixtures/bulk.js';
import { testPki } from '../fixtures/certs.js';
import { connectTo, newMesh, openChannel, startServer } from '../fixtures/connections.js';
import { Echo, echoService } from '../fixtures/echo-service.js';
import { deferred, rejectsWithStatus, sleep, until, within } from '../helpers.js';

// ---------------------------------------------------------------- services

const Calls = defineService('test.ws.calls', {
  echo: unary<unknown, unknown>(),
  /** The transport and address of the caller, as the handler sees them. */
  peer: unary<null, { transport: string; address: string }>(),
  count: serverStream<number, number>(),
  sum: clientStream<number, number>(),
  shout: bidi<string, string>(),
});

function callsService(onCall?: () => void): ReturnType<typeof serve> {
  return serve(Calls, {
    echo: (value) => (onCall?.(), value),
    peer: (_req, ctx) => ({ transport: ctx.peer.transport, address: ctx.peer.address }),
    async *count(n) {
      for (let i = 0; i < n; i++) yield i;
    },
    async sum(numbers) {
      let total = 0;
      for await (const n of numbers) total += n;
      return total;
    },
    async *shout(words) {
      for await (const word of words) yield word.toUpperCase();
    },
  });
}

function bulkService(): ReturnType<typeof serve> {
  return serve(Bulk, {
    async put(req, body) {
      const tally = new Tally();
      for await (const chunk of body) tally.add(chunk);
      return { name: req.name, bytes: tally.bytes, chunks: tally.chunks, sha256: tally.sha256 };
    },
    async *get(req) {
      yield* patternChunks(req.bytes, req.chunkBytes);
    },
    echo: (text) => text,
  });
}

/** Calls of every kind from `caller` to a Calls service on the other side. */
async function assertCalls(caller: RpcSession, what: string): Promise<void> {
  const c = caller.client(Calls);
  assert.deepEqual(await within(c.echo({ a: [1, 'two', { three: null }] }), 3_000, `${what}: unary`), { a: [1, 'two', { three: null }] });
  const counted: number[] = [];
  for await (const n of c.count(50)) counted.push(n);
  assert.deepEqual(counted, Array.from({ length: 50 }, (_, i) => i), `${what}: server stream`);
  assert.equal(await within(c.sum([1, 2, 3, 4]), 3_000, `${what}: client stream`), 10);
  const shouted: string[] = [];
  for await (const word of c.shout(['a', 'bc', 'def'])) shouted.push(word);
  assert.deepEqual(shouted, ['A', 'BC', 'DEF'], `${what}: bidi`);
}

/** An upload and a download of `bytes` (frames of `maxFrameBytes` when set), both checked by sha256. */
async function assertBulk(caller: RpcSession, bytes: number, chunkBytes: number, what: string): Promise<void> {
  const bulk = caller.client(Bulk);
  const sha = patternSha256(bytes, chunkBytes);
  const put = await within(bulk.put({ name: what }, patternChunks(bytes, chunkBytes)), 20_000, `${what}: upload`);
  assert.equal(put.bytes, bytes, `${what}: upload bytes`);
  assert.equal(put.sha256, sha, `${what}: upload sha256`);
  const tally = new Tally();
  await within(
    (async () => {
      for await (const chunk of bulk.get({ bytes, chunkBytes })) tally.add(chunk);
    })(),
    20_000,
    `${what}: download`,
  );
  assert.equal(tally.bytes, bytes, `${what}: download bytes`);
  assert.equal(tally.sha256, sha, `${what}: download sha256`);
}

/** listen() at `url` with the services, and the server's session of each connection as it is accepted. */
async function serverAt(t: TestContext, url: string, options: ListenOptions = {}): Promise<{ url: string; accepted: RpcSession[] }> {
  const accepted: RpcSession[] = [];
  const { server } = await startServer(t, { services: [callsService(), bulkService()], onSession: (s) => accepted.push(s), ...options }, url);
  return { url: server.url, accepted };
}

function mtls(): { server: ListenOptions['tls']; client: ConnectOptions['tls'] } {
  const pki = testPki();
  return {
    server: { key: pki.server.key, cert: pki.server.cert, ca: pki.ca, requestCert: true },
    client: { ca: pki.ca, key: pki.client.key, cert: pki.client.cert },
  };
}

/** An HTTP request to `url` (any method, no upgrade): its status. */
async function httpStatus(url: string, path: string): Promise<number> {
  const { port } = parseAddress(url) as { port: number };
  const req = request({ host: '127.0.0.1', port, path, method: 'GET' });
  req.end();
  const [response] = (await within(once(req, 'response'), 3_000, `GET ${path}`)) as [{ statusCode: number; resume(): void }];
  response.resume();
  return response.statusCode;
}

// ---------------------------------------------------------------- addresses

void describe('ws:// and wss:// addresses', () => {
  void test('a path defaults to /, a port to 80 or 443; IPv6 in brackets; the bound port replaces 0', { timeout: 5_000 }, async (t) => {
    assert.deepEqual(parseAddress('ws://example.com'), { kind: 'ws', host: 'example.com', port: 80, path: '/' });
    assert.deepEqual(parseAddress('wss://example.com/grid/v1'), { kind: 'wss', host: 'example.com', port: 443, path: '/grid/v1' });
    assert.deepEqual(parseAddress('ws://[::1]:9000/gw'), { kind: 'ws', host: '::1', port: 9000, path: '/gw' });
    for (const bad of ['ws://h:1/gw?x=1', 'ws://h:1/gw#f', 'ws://h:70000/', 'ws://h:1/a b', 'ws://:1/', 'wss://h:x/']) {
      assert.throws(() => parseAddress(bad), TypeError, bad);
    }
    const { url } = await serverAt(t, 'ws://127.0.0.1:0/gw');
    assert.match(url, /^ws:\/\/127\.0\.0\.1:[1-9]\d*\/gw$/);
  });

  void test('listen(wss://) without tls, or ws:// with tls, is a TypeError before anything listens', { timeout: 5_000 }, async (t) => {
    await assert.rejects(startServer(t, {}, 'wss://127.0.0.1:0/gw'), TypeError);
    await assert.rejects(startServer(t, { tls: mtls().server }, 'ws://127.0.0.1:0/gw'), TypeError);
  });
});

// ---------------------------------------------------------------- calls and bulk

void describe('calls and bulk over ws:// and wss://', () => {
  void test('ws:// calls of every kind, both ways: the dialer calls the acceptor and the acceptor calls the dialer; ctx.peer is ws', { timeout: 15_000 }, async (t) => {
    const server = await serverAt(t, 'ws://127.0.0.1:0/gw');
    const client = await connectTo(t, server.url, { services: [callsService()] });
    await assertCalls(client, 'dialer calls');
    await until(() => server.accepted.length === 1, 2_000, 'the server session');
    await assertCalls(server.accepted[0]!, 'acceptor calls back');
    const seenByServer = await client.client(Calls).peer(null);
    assert.equal(seenByServer.transport, 'ws');
    assert.match(seenByServer.address, /^ws:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(client.peer.transport, 'ws');
    assert.equal(client.peer.address, server.url, 'the dialer names the acceptor by the address it dialed');
  });

  void test('ws:// bulk: upload and download of 12 MiB + 5 bytes, sha256 equal both ways; 256 KiB frames span WebSocket messages', { timeout: 60_000 }, async (t) => {
    const size = 12 * MiB + 5;
    const server = await serverAt(t, 'ws://127.0.0.1:0/gw');
    await assertBulk(await connectTo(t, server.url), size, 64 * 1024, 'default frames');
    assert.ok(256 * 1024 > WEBSOCKET_MAX_MESSAGE_BYTES);
    const big = await serverAt(t, 'ws://127.0.0.1:0/big', { maxFrameBytes: 256 * 1024 });
    await assertBulk(await connectTo(t, big.url, { maxFrameBytes: 256 * 1024 }), size, 1024 * 1024 + 3, 'frames of 256 KiB');
  });

  void test('T-Z1 wss:// with mutual TLS: calls of every kind and bulk (8 MiB + 5 bytes) with sha256; ctx.peer.transport is wss', { timeout: 60_000 }, async (t) => {
    const tls = mtls();
    const server = await serverAt(t, 'wss://127.0.0.1:0/gw', { tls: tls.server });
    assert.match(server.url, /^wss:\/\//);
    const client = await connectTo(t, server.url, { tls: tls.client, services: [callsService()] });
    await assertCalls(client, 'wss dialer');
    await until(() => server.accepted.length === 1, 2_000, 'the server session');
    await assertCalls(server.accepted[0]!, 'wss acceptor calls back');
    const seen = await client.client(Calls).peer(null);
    assert.equal(seen.transport, 'wss');
    assert.match(seen.address, /^wss:\/\/127\.0\.0\.1:\d+$/);
    await assertBulk(client, 8 * MiB + 5, 64 * 1024, 'wss bulk');
  });

  void test('T-Z1 wss:// with requestCert: a client without a certificate, with one from another CA or expired, one that does not trust the server, or offers only TLS 1.2, is refused with the status tls:// gives (UNAUTHENTICATED, FAILED_PRECONDITION) and one server log line each; no handler runs', { timeout: 20_000 }, async (t) => {
    const pki = testPki();
    let calls = 0;
    const { server, logs } = await startServer(
      t,
      { services: [callsService(() => calls++)], tls: { key: pki.server.key, cert: pki.server.cert, ca: pki.ca, requestCert: true } },
      'wss://127.0.0.1:0/gw',
    );
    const client = { ca: pki.ca, key: pki.client.key, cert: pki.client.cert };
    const cases = [
      // the https server checks the client's certificate itself once TLS is up (to log why) and closes without a TLS
      // alert, so the client sees a silent close: UNAVAILABLE with the hint, as tls:// gives for a silent close
      ['no client certificate', { ca: pki.ca }, Status.UNAVAILABLE, /if it requires a client certificate, set tls\.cert and tls\.key/, /presented no client certificate/],
      ['a certificate from the rogue CA', { ca: pki.ca, key: pki.rogueClient.key, cert: pki.rogueClient.cert }, Status.UNAVAILABLE, /right after the TLS handshake/, /not signed by a CA this side trusts/],
      ['an expired certificate', { ca: pki.ca, key: pki.expiredClient.key, cert: pki.expiredClient.cert }, Status.UNAVAILABLE, /right after the TLS handshake/, /has expired/],
      ['a client that does not trust the server', undefined, Status.UNAUTHENTICATED, /the server's certificate is not signed by a CA this side trusts/, undefined],
      ['a TLS 1.2-only client', { ...client, maxVersion: 'TLSv1.2' }, Status.FAILED_PRECONDITION, /share no TLS version/, /no TLS version this side accepts/],
    ] as const;
    for (const [what, tls, status, message, logged] of cases) {
      const before = logs.length;
      const error = await rejectsWithStatus(connect(server.url, { tls, connectTimeoutMs: 5_000 }), status, what);
      assert.match(error.message, message, what);
      if (logged === undefined) continue; // the client refused the server: the server's TLS saw an alert only
      await until(() => logs.length > before, 3_000, `${what}: the server's line`);
      await sleep(50);
      const lines = logs.slice(before).filter((l) => l.level === 'warn');
      assert.equal(lines.length, 1, `${what}: one line: ${JSON.stringify(lines)}`);
      assert.match(lines[0]!.message, logged, what);
    }
    assert.equal(calls, 0);
    // each refused connection had a session from its TCP accept (so the handshake deadline covered its TLS): gone now
    await until(() => server.sessions.size === 0, 3_000, 'no session is left open');
    const good = await connectTo(t, server.url, { tls: client });
    assert.equal(await good.client(Calls).echo('in'), 'in');
  });

  void test('wss:// to a ws:// port is FAILED_PRECONDITION ("use ws://"); ws:// to a wss:// port UNAVAILABLE with the hint "use wss://", and the wss:// server logs one line', { timeout: 15_000 }, async (t) => {
    const pki = testPki();
    const plain = await serverAt(t, 'ws://127.0.0.1:0/gw');
    const error = await rejectsWithStatus(connect(plain.url.replace('ws://', 'wss://'), { tls: { ca: pki.ca }, connectTimeoutMs: 3_000 }), Status.FAILED_PRECONDITION, 'wss to ws');
    assert.match(error.message, /does not speak TLS here.*a ws:\/\/ port\?/);
    const { server, logs } = await startServer(t, { tls: { key: pki.server.key, cert: pki.server.cert } }, 'wss://127.0.0.1:0/gw');
    const reverse = await rejectsWithStatus(connect(server.url.replace('wss://', 'ws://'), { connectTimeoutMs: 3_000 }), Status.UNAVAILABLE, 'ws to wss');
    assert.match(reverse.message, /use wss:\/\//);
    await until(() => logs.some((l) => l.level === 'warn'), 3_000, 'the server line');
    assert.match(logs.find((l) => l.level === 'warn')!.message, /TLS handshake with wss:\/\/127\.0\.0\.1:\d+ failed: the peer did not speak TLS/);
  });
});

void describe('channels and meshes over ws://', () => {
  void test('a channel to a ws:// address calls through it; a two-node mesh listens and dials on ws://', { timeout: 15_000 }, async (t) => {
    const server = await serverAt(t, 'ws://127.0.0.1:0/gw');
    const ch = openChannel(t, server.url);
    assert.equal(await within(ch.client(Calls).echo('via channel', { waitForReady: true }), 5_000, 'channel call'), 'via channel');
    const a = newMesh(t, { name: 'a', listen: 'ws://127.0.0.1:0/mesh', services: [echoService()] });
    const b = newMesh(t, { name: 'b', listen: 'ws://127.0.0.1:0/mesh', services: [echoService()] });
    await Promise.all([a.start(), b.start()]);
    a.addPeer('b', b.url!);
    b.addPeer('a', a.url!);
    await within(a.peer('b').whenReady({ timeoutMs: 5_000 }), 6_000, 'the mesh pair to connect');
    assert.equal(await a.peer('b').client(Echo).echo('mesh'), 'mesh');
    assert.equal(await b.peer('a').client(Echo).echo('back'), 'back');
    const [session] = [...(a.peer('b').sessions.get('control') ?? [])];
    assert.equal(session?.peer.transport, 'ws');
  });
});

// ---------------------------------------------------------------- what others get

void describe('ws:// refusals and failures', () => {
  void test('a wrong path: connect() rejects UNAVAILABLE (404); a plain GET gets 426 on the path and 404 elsewhere', { timeout: 10_000 }, async (t) => {
    const server = await serverAt(t, 'ws://127.0.0.1:0/gw');
    const wrong = server.url.replace(/\/gw$/, '/other');
    const error = await rejectsWithStatus(connect(wrong, { connectTimeoutMs: 3_000 }), Status.UNAVAILABLE, 'wrong path');
    assert.match(error.message, /404/);
    assert.equal(await httpStatus(server.url, '/gw'), 426);
    assert.equal(await httpStatus(server.url, '/'), 404);
    assert.equal(await httpStatus(server.url, '/gw/'), 404, 'the path is matched exactly');
    const client = await connectTo(t, server.url);
    assert.equal(await client.client(Calls).echo(1), 1, 'the server still takes clients');
  });

  void test('a server that accepts TCP and never answers the upgrade: connect() rejects UNAVAILABLE within connectTimeoutMs', { timeout: 10_000 }, async (t) => {
    const held: Socket[] = [];
    const silent = createServer((socket) => {
      held.push(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t.after(async () => {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    });
    const { port } = silent.address() as { port: number };
    const started = performance.now();
    const error = await rejectsWithStatus(connect(`ws://127.0.0.1:${port}/gw`, { connectTimeoutMs: 300 }), Status.UNAVAILABLE, 'silent server');
    const tookMs = performance.now() - started;
    assert.ok(tookMs >= 250 && tookMs < 2_000, `took ${tookMs.toFixed(0)} ms`);
    assert.match(error.message, /connectTimeoutMs/);
  });

  void test("an idle session outlives the server's request deadlines: headersTimeout and requestTimeout (handshakeTimeoutMs) stop at the upgrade", { timeout: 10_000 }, async (t) => {
    const server = await serverAt(t, 'ws://127.0.0.1:0/gw', { handshakeTimeoutMs: 300 });
    const client = await connectTo(t, server.url);
    await sleep(1_500); // the server checks its request deadlines every second
    assert.equal(await within(client.client(Calls).echo('still here'), 3_000, 'a call after 1.5 s idle'), 'still here');
    assert.equal(server.accepted[0]?.error, undefined);
  });

  void test('close() on either side: both sessions close without an error (the WebSocket close frame is the end of the bytes)', { timeout: 10_000 }, async (t) => {
    const server = await serverAt(t, 'ws://127.0.0.1:0/gw');
    const a = await connectTo(t, server.url);
    await until(() => server.accepted.length === 1, 2_000, 'the server session');
    await within(a.close(), 3_000, 'the dialer closes');
    assert.equal(await within(a.closed, 3_000, 'dialer closed'), undefined);
    assert.equal(await within(server.accepted[0]!.closed, 3_000, 'acceptor closed'), undefined);
    const b = await connectTo(t, server.url);
    await until(() => server.accepted.length === 2, 2_000, 'the second server session');
    await within(server.accepted[1]!.close(), 3_000, 'the acceptor closes');
    assert.equal(await within(b.closed, 3_000, 'dialer closed'), undefined);
    assert.equal(await within(server.accepted[1]!.closed, 3_000, 'acceptor closed'), undefined);
  });
});

// ---------------------------------------------------------------- back pressure

/** A session over each end of a ws:// connection made at the transport layer, so the test holds both transports. */
async function transportPair(
  t: TestContext,
  serverOptions: Parameters<typeof createSession>[2],
  clientOptions: Parameters<typeof createSession>[2],
): Promise<{ client: RpcSession; server: RpcSession; clientTransport: Transport; serverTransport: Transport }> {
  const accepted = deferred<Transport>();
  const listener = await listenWebSocket('ws://127.0.0.1:0/gw', (transport) => accepted.resolve(transport));
  const clientTransport = await dialWebSocket(listener.url);
  const serverTransport = await within(accepted.promise, 3_000, 'accept');
  const server = createSession(serverTransport, 'acceptor', serverOptions);
  const client = createSession(clientTransport, 'dialer', clientOptions);
  t.after(async () => {
    client.destroy();
    server.destroy();
    await within(Promise.all([client.closed, server.closed, listener.close()]), 3_000, 'teardown');
  });
  await within(Promise.all([client.ready, server.ready]), 3_000, 'handshake');
  return { client, server, clientTransport, serverTransport };
}

void describe('ws:// back pressure', () => {
  void test('a peer that stops reading: write() returns false, the writer buffers at most a flush while its credit allows 256 MiB, and the write-stall watch closes it', { timeout: 20_000 }, async (t) => {
    const huge = { connectionWindow: 256 * MiB, bulkWindow: 256 * MiB };
    const { client, clientTransport, serverTransport } = await transportPair(t, { services: [bulkService()], ...huge }, { ...huge, writeStallTimeoutMs: 1_500 });
    let refusals = 0;
    const write = clientTransport.write.bind(clientTransport);
    clientTransport.write = (chunks) => {
      const ok = write(chunks);
      if (!ok) refusals++;
      return ok;
    };
    let produced = 0;
    const chunk = new Uint8Array(64 * 1024).fill(1);
    async function* endless(): AsyncGenerator<Uint8Array> {
      for (;;) {
        produced += chunk.length;
        yield chunk;
      }
    }
    const upload = client.client(Bulk).put({ name: 'never read' }, endless());
    upload.catch(() => undefined);
    await until(() => produced > 4 * MiB, 5_000, 'the upload to flow');
    serverTransport.pauseReading!(); // the server's WebSocket stops reading: its kernel buffers fill, then ours
    let peakBuffered = 0;
    let last = produced;
    let stableSince = performance.now();
    while (performance.now() - stableSince < 500) {
      peakBuffered = Math.max(peakBuffered, clientTransport.writableLength ?? 0);
      if (produced !== last) {
        last = produced;
        stableSince = performance.now();
      }
      await sleep(5);
    }
    assert.ok(refusals > 0, 'write() returned false');
    // one flush (1 MiB of stream data) and a frame more: never what the 256 MiB credit would allow
    assert.ok(peakBuffered <= 2 * MiB, `buffered amount peaked at ${peakBuffered} bytes`);
    const closedWith = await within(client.closed, 5_000, 'the write-stall watch to close the connection');
    assert.match(String(closedWith), /GW_ERR_WRITE_STALL/);
    await assert.rejects(upload);
  });

  void test('onDrain: a writer blocked by a paused reader resumes when it reads again, and every byte arrives', { timeout: 20_000 }, async (t) => {
    const { client, serverTransport } = await transportPair(t, { services: [bulkService()] }, {});
    const bytes = 24 * MiB + 7;
    const upload = client.client(Bulk).put({ name: 'paused' }, patternChunks(bytes));
    await sleep(50);
    serverTransport.pauseReading!();
    await sleep(300);
    // resume as the read budget would: the same private path as a budgeted turn (pauseReading is for good, so the
    // test reaches the WebSocket itself)
    (serverTransport as unknown as { readingStopped: boolean; ws: { resume(): void } }).readingStopped = false;
    (serverTransport as unknown as { ws: { resume(): void } }).ws.resume();
    const result = await within(upload, 15_000, 'the upload to finish');
    assert.equal(result.bytes, bytes);
    assert.equal(result.sha256, patternSha256(bytes));
  });
});

// ---------------------------------------------------------------- what the dialer and listener fix, against others

void describe('ws:// and wss:// settings a peer cannot change', () => {
  void test('the dialer never offers permessage-deflate: its upgrade request has no Sec-WebSocket-Extensions', { timeout: 10_000 }, async (t) => {
    const request = deferred<string>();
    const server = createServer((socket) => {
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (text.includes('\r\n\r\n')) {
          request.resolve(text);
          socket.destroy();
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => server.close(resolve)));
    const port = (server.address() as { port: number }).port;
    await dialWebSocket(`ws://127.0.0.1:${port}/gw`, { connectTimeoutMs: 3_000 }).then(
      (transport) => transport.destroy(),
      () => undefined,
    );
    const head = (await within(request.promise, 3_000, 'the upgrade request')).toLowerCase();
    assert.match(head, /^get \/gw http\/1\.1/);
    assert.doesNotMatch(head, /sec-websocket-extensions/);
  });

  void test('the dialer closes on a message over WEBSOCKET_MAX_MESSAGE_BYTES from the server (1009, GW_ERR_FRAME_SIZE), and takes one of exactly that size', { timeout: 10_000 }, async (t) => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
    t.after(async () => {
      for (const client of wss.clients) client.terminate();
      await within(new Promise((resolve) => wss.close(resolve)), 3_000, 'the ws server to close');
    });
    await once(wss, 'listening');
    const closeCode = deferred<number>();
    wss.on('connection', (ws) => {
      ws.on('error', () => undefined);
      ws.on('close', (code: number) => closeCode.resolve(code));
      ws.send(new Uint8Array(WEBSOCKET_MAX_MESSAGE_BYTES));
      ws.send(new Uint8Array(WEBSOCKET_MAX_MESSAGE_BYTES + 1));
    });
    const transport = await dialWebSocket(`ws://127.0.0.1:${(wss.address() as { port: number }).port}/`, { connectTimeoutMs: 3_000 });
    t.after(() => transport.destroy());
    const closed = deferred<Error | undefined>();
    let received = 0;
    transport.attach({ onData: (chunk) => void (received += chunk.length), onEnd: () => undefined, onClose: (error) => closed.resolve(error), onDrain: () => undefined });
    const error = await within(closed.promise, 3_000, 'the dialer to close');
    assert.equal(received, WEBSOCKET_MAX_MESSAGE_BYTES, 'the message of exactly the bound was delivered, the larger one not');
    assert.ok(error instanceof ProtocolError && error.code === 'GW_ERR_FRAME_SIZE', String(error));
    assert.equal(await within(closeCode.promise, 3_000, 'the server to see the close'), 1009);
  });

  void test('a wss:// dial offers TLS 1.3 only unless tls.minVersion says otherwise: a TLS 1.2-only server is FAILED_PRECONDITION', { timeout: 10_000 }, async (t) => {
    const pki = testPki();
    const server = createTlsServer({ key: pki.server.key, cert: pki.server.cert, maxVersion: 'TLSv1.2' }, (socket) => socket.destroy());
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => server.close(resolve)));
    const url = `wss://127.0.0.1:${(server.address() as { port: number }).port}/gw`;
    const error = await rejectsWithStatus(connect(url, { tls: { ca: pki.ca }, connectTimeoutMs: 3_000 }), Status.FAILED_PRECONDITION, 'TLS 1.2-only server');
    assert.match(error.message, /share no TLS version/);
    // and with minVersion chosen, TLS 1.2 is allowed (the server then hangs up: UNAVAILABLE, not a version error)
    await rejectsWithStatus(connect(url, { tls: { ca: pki.ca, minVersion: 'TLSv1.2' }, connectTimeoutMs: 3_000 }), Status.UNAVAILABLE, 'TLS 1.2 allowed');
  });

  void test('a wss:// listener takes TLS 1.3 only unless tls.minVersion says otherwise: a TLS 1.2-only client is refused, with it set it connects', { timeout: 10_000 }, async (t) => {
    const pki = testPki();
    const strict = await serverAt(t, 'wss://127.0.0.1:0/gw', { tls: { key: pki.server.key, cert: pki.server.cert } });
    await rejectsWithStatus(connect(strict.url, { tls: { ca: pki.ca, maxVersion: 'TLSv1.2' }, connectTimeoutMs: 3_000 }), Status.FAILED_PRECONDITION, 'TLS 1.2 to the default');
    const lenient = await serverAt(t, 'wss://127.0.0.1:0/gw', { tls: { key: pki.server.key, cert: pki.server.cert, minVersion: 'TLSv1.2' } });
    const session = await connectTo(t, lenient.url, { tls: { ca: pki.ca, maxVersion: 'TLSv1.2' } });
    assert.equal(await session.client(Calls).echo('1.2'), '1.2');
  });
});
