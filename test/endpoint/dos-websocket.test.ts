/**
 * T-D10 (reliability.md §4 B), the WebSocket half: what a client can make a ws:// listener (and an attach()ed server)
 * hold or do with the upgrade and the WebSocket layer, before gridwire's own limits see a frame. Each attack runs
 * beside a canary on its own ws:// connection; the canary must keep its p99, the attacker must be closed (with the
 * right code where gridwire closes it), and RSS must stay within the stated budget.
 *
 * - an oversized message (more than WEBSOCKET_MAX_MESSAGE_BYTES, also as fragments) closes that connection (1009,
 *   GW_ERR_FRAME_SIZE) before the WebSocket layer buffers it;
 * - an upgrade request with 2 000 headers (CVE-2024-37890) is refused with 431, as is one with 64;
 * - a flood of slow upgrades (half a request, or nothing) is bounded by handshakeTimeoutMs and maxPendingHandshakes,
 *   while a real client connects;
 * - permessage-deflate offered by a raw client is never negotiated, and a compressed frame sent anyway closes it;
 * - a text message closes the connection (1003, GW_ERR_WEBSOCKET);
 * - a frame dribbled one byte per TCP segment, or a message in thousands of one-byte fragments, closes the connection
 *   (GW_ERR_ENHANCE_YOUR_CALM) before ws holds more than WEBSOCKET_MAX_BUFFERED_CHUNKS / WEBSOCKET_MAX_FRAGMENTS
 *   pieces of it;
 * - a flood of pings, pongs or empty messages closes the connection (GW_ERR_ENHANCE_YOUR_CALM), a few between
 *   messages do not.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createConnection, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WebSocket } from 'ws';

import { attach, connect } from '../../src/index.js';
import { parseAddress } from '../../src/transport/address.js';
import { WEBSOCKET_MAX_BUFFERED_CHUNKS, WEBSOCKET_MAX_EMPTY_FRAMES_IN_A_ROW, WEBSOCKET_MAX_FRAGMENTS } from '../../src/transport/websocket-transport.js';
import { WEBSOCKET_MAX_MESSAGE_BYTES } from '../../src/wire/constants.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { assertCanaryHealthy, assertClosedWith, dosTarget, RssWatch } from '../fixtures/dos.js';
import { Echo, echoService } from '../fixtures/echo-service.js';
import { type LogLine } from '../fixtures/connections.js';
import { helloFrame, sleep, until, within } from '../helpers.js';

const WS_URL = 'ws://127.0.0.1:0/gw';

function portOf(url: string): number {
  return (parseAddress(url) as { port: number }).port;
}

/** A raw WebSocket client of `url` (any `ws` options) that has sent a HELLO; terminated after the test. */
async function rawWebSocket(t: TestContext, url: string, options: ConstructorParameters<typeof WebSocket>[2] = {}): Promise<{ ws: WebSocket; closed: Promise<number> }> {
  const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
  ws.on('error', () => undefined);
  t.after(() => ws.terminate());
  const closed = new Promise<number>((resolve) => ws.once('close', (code: number) => resolve(code)));
  await within(once(ws, 'open'), 3_000, 'raw WebSocket open');
  ws.send(helloFrame());
  return { ws, closed };
}

interface RawHttp {
  socket: Socket;
  /** Everything the server sent so far, as latin1 text. */
  received(): string;
  /** Resolves with everything the server sent once the connection has closed. */
  answer: Promise<string>;
  closed(): boolean;
}

/** A raw TCP socket to `port` that writes `text` (if any); destroyed after the test. */
function rawHttp(t: TestContext, port: number, text: string | Uint8Array = ''): RawHttp {
  const socket = createConnection({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  t.after(() => {
    socket.destroy();
  });
  let received = '';
  let isClosed = false;
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  const answer = new Promise<string>((resolve) =>
    socket.once('close', () => {
      isClosed = true;
      resolve(received);
    }),
  );
  if (text.length > 0) socket.write(text);
  return { socket, received: () => received, answer, closed: () => isClosed };
}

/** The request line and headers of a WebSocket upgrade to `path`, `extra` headers first, without the final CRLF. */
function upgradeHead(path: string, extra: readonly string[] = []): string {
  return [
    `GET ${path} HTTP/1.1`,
    'Host: 127.0.0.1',
    ...extra,
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
  ].join('\r\n');
}

/** An application http server listening on a free port (every request: 200 "app"), closed after the test. */
async function appServer(t: TestContext): Promise<HttpServer> {
  const server = createHttpServer((_req, res) => res.end('app'));
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await within(new Promise((resolve) => server.close(resolve)), 3_000, 'app server close');
  });
  return server;
}

function attachEcho(t: TestContext, server: HttpServer, options: Parameters<typeof attach>[1] = { path: '/gw' }): { url: string; logs: LogLine[] } {
  const logs: LogLine[] = [];
  const gw = attach(server, { services: [echoService()], log: (level, message) => logs.push({ level, message }), ...options });
  t.after(async () => {
    for (const s of gw.sessions) s.destroy();
    await within(gw.close({ graceMs: 0 }), 3_000, 'detach');
  });
  return { url: gw.url, logs };
}

void describe('T-D10 WebSocket: messages', () => {
  void test('T-D10 oversized WebSocket message: 20 connections each send one of 65 547 bytes (one whole, or as fragments): each closed 1009 with GW_ERR_FRAME_SIZE; the canary is fine', { timeout: 30_000 }, async (t) => {
    const target = await dosTarget(t, {}, 300, { url: WS_URL });
    const rss = new RssWatch();
    const canary = target.startCanary();
    const tooBig = new Uint8Array(WEBSOCKET_MAX_MESSAGE_BYTES + 1);
    const codes: number[] = [];
    for (let i = 0; i < 20; i++) {
      const { ws, closed } = await rawWebSocket(t, target.url);
      if (i % 2 === 0) ws.send(tooBig);
      else {
        // the same size in four fragments: the bound is on the message, not on each WebSocket frame
        const quarter = tooBig.length / 4;
        for (let f = 0; f < 4; f++) ws.send(tooBig.subarray(Math.ceil(f * quarter), Math.ceil((f + 1) * quarter)), { fin: f === 3 });
      }
      codes.push(await within(closed, 3_000, `attacker ${i} to be closed`));
    }
    assert.deepEqual(new Set(codes), new Set([1009]), 'closed with 1009 (message too big)');
    const line = await assertClosedWith(target, 'GW_ERR_FRAME_SIZE');
    assert.match(line, /65546/);
    // a message of exactly the bound is fine: one extension frame (ignored by the receiver) of 65 536 bytes
    const { ws, closed } = await rawWebSocket(t, target.url);
    let open = true;
    void closed.then(() => (open = false));
    const largest = encodeFrame({ type: 0x80, flags: 0, streamId: 0, payload: new Uint8Array(WEBSOCKET_MAX_MESSAGE_BYTES - 10) });
    assert.equal(largest.length, WEBSOCKET_MAX_MESSAGE_BYTES);
    ws.send(largest);
    ws.send(new Uint8Array(0)); // an empty message carries nothing and breaks nothing
    await sleep(200);
    assert.ok(open, 'a message of exactly WEBSOCKET_MAX_MESSAGE_BYTES, and an empty one, leave the connection open');
    assertCanaryHealthy(target, await canary.stop(), 'T-D10 oversized WebSocket message');
    rss.assertUnder(32, 'T-D10 oversized WebSocket message'); // 20 connections; nothing of the big messages is kept
  });

  void test('T-D10 a text message closes the connection with 1003 and GW_ERR_WEBSOCKET, before or after the HELLO; the canary is fine', { timeout: 20_000 }, async (t) => {
    const target = await dosTarget(t, {}, 300, { url: WS_URL });
    const canary = target.startCanary();
    const after = await rawWebSocket(t, target.url);
    after.ws.send('not binary');
    assert.equal(await within(after.closed, 3_000, 'closed after a text message'), 1003);
    const line = await assertClosedWith(target, 'GW_ERR_WEBSOCKET');
    assert.match(line, /text message/);
    const before = new WebSocket(target.url, { perMessageDeflate: false });
    before.on('error', () => undefined);
    t.after(() => before.terminate());
    const beforeClosed = new Promise<number>((resolve) => before.once('close', (code: number) => resolve(code)));
    await within(once(before, 'open'), 3_000, 'open');
    before.send('GET / HTTP/1.1');
    assert.equal(await within(beforeClosed, 3_000, 'closed for a text message instead of a HELLO'), 1003);
    assertCanaryHealthy(target, await canary.stop(), 'T-D10 text message');
  });

  void test('T-D10 deflate offered: never negotiated (no Sec-WebSocket-Extensions in the 101), on listen() and on attach(); a compressed frame sent anyway closes the connection', { timeout: 20_000 }, async (t) => {
    const target = await dosTarget(t, {}, 300, { url: WS_URL });
    const canary = target.startCanary();
    const app = await appServer(t);
    const attached = attachEcho(t, app);
    const offer = ['Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; server_no_context_takeover'];
    for (const [name, port] of [['listen', portOf(target.url)], ['attach', portOf(attached.url)]] as const) {
      const raw = rawHttp(t, port, `${upgradeHead('/gw', offer)}\r\n\r\n`);
      await until(() => raw.received().includes('\r\n\r\n'), 3_000, `${name}: the response`);
      const head = raw.received().slice(0, raw.received().indexOf('\r\n\r\n')).toLowerCase();
      assert.match(head, /^http\/1\.1 101 /, `${name}: upgraded`);
      assert.doesNotMatch(head, /sec-websocket-extensions/, `${name}: no extension accepted`);
      // a "compressed" binary frame anyway (FIN + RSV1, masked with a zero key): RFC 6455 says RSV1 must be clear
      raw.socket.write(Buffer.from([0xc2, 0x80 | 3, 0, 0, 0, 0, 1, 2, 3]));
      await within(raw.answer, 3_000, `${name}: the connection to close`);
    }
    const line = await assertClosedWith(target, 'GW_ERR_WEBSOCKET');
    assert.match(line, /RSV1/);
    await until(() => attached.logs.some((l) => l.level === 'warn' && l.message.includes('GW_ERR_WEBSOCKET')), 3_000, `attach logs GW_ERR_WEBSOCKET: ${JSON.stringify(attached.logs)}`);
    // and the ws client's own offer: the connection is made without compression
    const offered = new WebSocket(target.url, { perMessageDeflate: true });
    offered.on('error', () => undefined);
    t.after(() => offered.terminate());
    await within(once(offered, 'open'), 3_000, 'a deflate-offering client to connect');
    assert.equal(offered.extensions, '');
    assertCanaryHealthy(target, await canary.stop(), 'T-D10 deflate offered');
  });
});

/** The header of a binary WebSocket frame from a client (FIN unless `fin` is false; masked with the zero key). */
function clientFrameHeader(payloadLength: number, opcode = 0x2, fin = true): Buffer {
  const first = (fin ? 0x80 : 0) | opcode;
  if (payloadLength < 126) return Buffer.from([first, 0x80 | payloadLength, 0, 0, 0, 0]);
  const header = Buffer.alloc(8); // the last four: the zero masking key
  header[0] = first;
  header[1] = 0x80 | 126;
  header.writeUInt16BE(payloadLength, 2);
  return header;
}

/**
 * A raw TCP client of the ws:// server on `port` that upgrades /gw by hand and sends its HELLO in one binary message,
 * with Nagle off; it reads (and drops) what it receives only when `read`. Destroyed after the test.
 */
async function upgradedAttacker(t: TestContext, port: number, read: boolean): Promise<{ socket: Socket; closed: () => boolean; gone: Promise<void> }> {
  const raw = rawHttp(t, port, `${upgradeHead('/gw')}\r\n\r\n`);
  raw.socket.setNoDelay(true);
  await until(() => raw.received().includes('\r\n\r\n'), 3_000, 'the upgrade response');
  assert.match(raw.received(), /^HTTP\/1\.1 101 /);
  const hello = helloFrame();
  raw.socket.write(Buffer.concat([clientFrameHeader(hello.length), hello]));
  if (!read) raw.socket.pause();
  return { socket: raw.socket, closed: raw.closed, gone: raw.answer.then(() => undefined) };
}

/**
 * What an attack holds: the memory (V8's heap and what lies outside it, Buffers' backing stores) that a full GC could
 * not free while the attackers were open, less what it could once they were closed. Not RSS, which counts the garbage
 * the canary makes meanwhile, nor growth since the start, which counts what the canary keeps (a latency sample a call,
 * ~2 MiB in this test's time).
 */
class HeldWatch {
  private static gc: (() => void) | undefined;
  private open = 0;

  constructor() {
    if (HeldWatch.gc === undefined) {
      setFlagsFromString('--expose-gc');
      HeldWatch.gc = runInNewContext('gc') as () => void;
    }
  }

  /** While the attackers are open: the latest sample is what they held. */
  async sampleOpen(): Promise<void> {
    this.open = await HeldWatch.held();
  }

  /** Once they are closed: what they held, in MiB, asserted under `mib`. */
  async assertUnder(mib: number, attack: string): Promise<void> {
    const held = (this.open - (await HeldWatch.held())) / (1024 * 1024);
    assert.ok(this.open > 0, `${attack}: nothing sampled while the attackers were open`);
    assert.ok(held < mib, `${attack}: the attackers held ${held.toFixed(1)} MiB (freed when they were closed), budget ${mib} MiB`);
  }

  private static async held(): Promise<number> {
    // twice, a turn of the event loop apart: what the first frees outside the heap is counted as freed only once V8
    // has swept it (concurrently), and the second frees what the first's finalizers released
    HeldWatch.gc!();
    await new Promise((resolve) => setImmediate(resolve));
    HeldWatch.gc!();
    const { heapUsed, external } = process.memoryUsage();
    return heapUsed + external;
  }
}

void describe('T-D10 WebSocket: what the WebSocket layer holds and parses', () => {
  void test('T-D10 dribble: 4 connections each start a 65 535-byte message and send it one byte per TCP write: each closed (GW_ERR_ENHANCE_YOUR_CALM) within WEBSOCKET_MAX_BUFFERED_CHUNKS reads; what they hold under 4 MiB (heap after a full GC); RSS under 96 MiB; the canary is fine', { timeout: 60_000 }, async (t) => {
    const target = await dosTarget(t, {}, 300, { url: WS_URL });
    const rss = new RssWatch();
    const held = new HeldWatch();
    const canary = target.startCanary();
    const attackers = await Promise.all(Array.from({ length: 4 }, () => upgradedAttacker(t, portOf(target.url), false)));
    for (const a of attackers) a.socket.write(clientFrameHeader(65_535));
    // A millisecond between bytes, so that the server reads each on its own (bytes that wait in the kernel together are
    // one read); 16 x the bound leaves room for a loaded machine that reads several at once. What the dribblers hold is
    // sampled every 256 bytes while they are open (the last sample just as they reach the bound)
    const most = 16 * WEBSOCKET_MAX_BUFFERED_CHUNKS;
    for (let i = 0; i < most && !attackers.every((a) => a.closed()); i++) {
      for (const a of attackers) if (!a.closed()) a.socket.write(Buffer.of(i & 0xff));
      await sleep(1);
      if ((i + 1) % 256 === 0 && !attackers.every((a) => a.closed())) await held.sampleOpen();
    }
    await within(Promise.all(attackers.map((a) => a.gone)), 5_000, 'every dribbler to be closed');
    const line = await assertClosedWith(target, 'GW_ERR_ENHANCE_YOUR_CALM');
    assert.match(line, /socket reads/);
    // 4 connections x at most 1 024 one-byte reads held: 0.7-1.4 MiB measured (~250 bytes a read: its Buffer, backing
    // store and place in the list), as ws's Receiver held before gridwire's reader took the messages; 10 KiB more a
    // read (10 MiB a connection) measured 42 MiB
    await held.assertUnder(4, 'T-D10 dribble');
    assertCanaryHealthy(target, await canary.stop(), 'T-D10 dribble');
    // RSS counts the canary's garbage, not the attack: a ws:// canary alone grew RSS 24-37 MiB in this test's time,
    // and where GC ran swung the peak by 10 MiB from run to run (51-78 MiB measured, the held memory the same); the
    // budget above is the attack's, this one a coarse backstop
    rss.assertUnder(96, 'T-D10 dribble');
  });

  void test('T-D10 fragments: 20 connections each send 16 383 one-byte fragments of one message (112 KiB): each closed (GW_ERR_ENHANCE_YOUR_CALM) at fragment WEBSOCKET_MAX_FRAGMENTS + 1; RSS under 32 MiB; the canary is fine', { timeout: 30_000 }, async (t) => {
    const target = await dosTarget(t, {}, 300, { url: WS_URL });
    const rss = new RssWatch();
    const canary = target.startCanary();
    const count = 16_383;
    const fragments = Buffer.concat(Array.from({ length: count }, (_, i) => Buffer.concat([clientFrameHeader(1, i === 0 ? 0x2 : 0x0, false), Buffer.of(0x41)])));
    const attackers: Awaited<ReturnType<typeof upgradedAttacker>>[] = [];
    for (let i = 0; i < 20; i++) {
      const a = await upgradedAttacker(t, portOf(target.url), true); // reads, to see the server's FIN
      a.socket.write(fragments);
      attackers.push(a);
    }
    await within(Promise.all(attackers.map((a) => a.gone)), 5_000, 'every fragmenter to be closed');
    const line = await assertClosedWith(target, 'GW_ERR_ENHANCE_YOUR_CALM');
    assert.match(line, new RegExp(`more than ${WEBSOCKET_MAX_FRAGMENTS} fragments`));
    // gridwire's own messages are one frame each: a message of exactly the bound in fragments is still fine
    const { ws, closed } = await rawWebSocket(t, target.url);
    let open = true;
    void closed.then(() => (open = false));
    const ext = encodeFrame({ type: 0x80, flags: 0, streamId: 0, payload: new Uint8Array(WEBSOCKET_MAX_FRAGMENTS * 4 - 10) });
    for (let f = 0; f < WEBSOCKET_MAX_FRAGMENTS; f++) ws.send(ext.subarray(f * 4, f * 4 + 4), { fin: f === WEBSOCKET_MAX_FRAGMENTS - 1 });
    await sleep(200);
    assert.ok(open, `a message in ${WEBSOCKET_MAX_FRAGMENTS} fragments leaves the connection open`);
    assertCanaryHealthy(target, await canary.stop(), 'T-D10 fragments');
    // ws's default (16 384 fragments) held ~1.7 MiB of heap per connection; with 64 nothing to speak of. The budget is
    // mostly the canary's own garbage, which RssWatch counts (19 MiB measured)
    rss.assertUnder(32, 'T-D10 fragments');
  });

  for (const [kind, frame, read] of [
    ['empty pongs, reading', clientFrameHeader(0, 0xa), true],
    ['pings of 125 bytes, never reading', Buffer.concat([clientFrameHeader(125, 0x9), Buffer.alloc(125, 0x70)]), false],
    ['empty binary messages, reading', clientFrameHeader(0), true],
  ] as const) {
    void test(`T-D10 control frame flood (${kind}): closed with GW_ERR_ENHANCE_YOUR_CALM after WEBSOCKET_MAX_EMPTY_FRAMES_IN_A_ROW; the canary is fine; RSS under 64 MiB`, { timeout: 30_000 }, async (t) => {
      const target = await dosTarget(t, {}, 300, { url: WS_URL });
      const rss = new RssWatch();
      const canary = target.startCanary();
      const a = await upgradedAttacker(t, portOf(target.url), read);
      const block = Buffer.concat(Array.from({ length: Math.floor(65_536 / frame.length) }, () => frame));
      const endsAt = performance.now() + 3_000;
      while (!a.closed() && performance.now() < endsAt) {
        if (!a.socket.write(block)) await Promise.race([once(a.socket, 'drain').catch(() => undefined), a.gone, sleep(50)]);
        else await new Promise((resolve) => setImmediate(resolve));
      }
      await within(a.gone, 5_000, 'the flooder to be closed');
      const line = await assertClosedWith(target, 'GW_ERR_ENHANCE_YOUR_CALM');
      assert.match(line, /WebSocket empty frame flood/);
      assert.equal(target.logs.filter((l) => l.level === 'warn').length, 1, `one line: ${JSON.stringify(target.logs)}`);
      assertCanaryHealthy(target, await canary.stop(), `T-D10 ${kind}`);
      // what the flood leaves is nothing (17 frames parsed, then reading stops: the close above asserts it); RSS counts
      // the canary's own garbage over the 2 s the closed connection lingers (24-37 MiB for a ws:// canary alone in
      // 1.5 s, 34.6 MiB seen against the old 32 MiB budget with nothing held), so this is a coarse backstop
      rss.assertUnder(64, `T-D10 ${kind}`);
    });
  }

  void test('T-D10 a few pings between messages are fine: pings and pongs in runs of WEBSOCKET_MAX_EMPTY_FRAMES_IN_A_ROW, each run followed by a message, leave the connection open', { timeout: 10_000 }, async (t) => {
    const target = await dosTarget(t, {}, 50, { url: WS_URL });
    const { ws, closed } = await rawWebSocket(t, target.url);
    let open = true;
    void closed.then(() => (open = false));
    const ext = encodeFrame({ type: 0x80, flags: 0, streamId: 0, payload: new Uint8Array(1) });
    for (let run = 0; run < 4; run++) {
      for (let i = 0; i < WEBSOCKET_MAX_EMPTY_FRAMES_IN_A_ROW; i++) {
        if (i % 2 === 0) ws.ping();
        else ws.pong();
      }
      ws.send(ext);
    }
    await sleep(300);
    assert.ok(open, 'still open');
    assert.deepEqual(target.logs.filter((l) => l.level === 'warn'), []);
  });
});

void describe('T-D10 WebSocket: upgrades', () => {
  void test('T-D10 upgrade with 2 000 headers (CVE-2024-37890): refused with 431 on listen() (and 64 headers too; 63 are fine) and on attach(); the server is fine', { timeout: 20_000 }, async (t) => {
    const target = await dosTarget(t, {}, 300, { url: WS_URL });
    const canary = target.startCanary();
    const rss = new RssWatch();
    const junk = (n: number): string[] => Array.from({ length: n }, (_, i) => `x-${i}: ${i}`);
    // the WebSocket headers after the junk: Node keeps only its maxHeadersCount first ones, and ws once crashed on
    // the missing Sec-WebSocket-Key that dropped
    for (const [what, extra] of [['2 000 headers', junk(2000)], ['64 headers', junk(59)]] as const) {
      const raw = rawHttp(t, portOf(target.url), `${upgradeHead('/gw', extra)}\r\n\r\n`);
      const answer = await within(raw.answer, 3_000, `${what}: the answer`);
      assert.match(answer, /^HTTP\/1\.1 431 /, `${what}: ${answer.slice(0, 60)}`);
    }
    const fine = rawHttp(t, portOf(target.url), `${upgradeHead('/gw', junk(58))}\r\n\r\n`);
    await until(() => fine.received().includes('\r\n\r\n'), 3_000, '63 headers: the response');
    assert.match(fine.received(), /^HTTP\/1\.1 101 /);
    // attach(): the application's server keeps Node's defaults (2 000 headers, 16 KiB), so 2 000 tiny ones get through
    const app = await appServer(t);
    const attached = attachEcho(t, app);
    const tiny = Array.from({ length: 2000 }, () => 'a:1');
    const viaApp = rawHttp(t, portOf(attached.url), `${upgradeHead('/gw', tiny)}\r\n\r\n`);
    assert.match(await within(viaApp.answer, 3_000, 'attach: the answer'), /^HTTP\/1\.1 431 /);
    const client = await within(connect(attached.url), 3_000, 'a real client of the attached server');
    t.after(() => client.destroy());
    assert.equal(await client.client(Echo).echo('after'), 'after');
    assertCanaryHealthy(target, await canary.stop(), 'T-D10 2 000 headers');
    rss.assertUnder(16, 'T-D10 2 000 headers');
  });

  void test('T-D10 slow upgrades: 40 connections holding half a request or nothing against maxPendingHandshakes 30 and handshakeTimeoutMs 1 000: the 10 oldest closed at once, the rest within the deadline; a real client connects meanwhile', { timeout: 30_000 }, async (t) => {
    const target = await dosTarget(t, { maxPendingHandshakes: 30, handshakeTimeoutMs: 1_000 }, 300, { url: WS_URL });
    const rss = new RssWatch();
    const canary = target.startCanary();
    const port = portOf(target.url);
    const slow: { raw: RawHttp; openedAt: number; closedAt: number }[] = [];
    for (let i = 0; i < 40; i++) {
      const raw = rawHttp(t, port, i % 2 === 0 ? 'GET /gw HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr' : '');
      await within(once(raw.socket, 'connect'), 3_000, 'slow upgrade connect');
      const entry = { raw, openedAt: performance.now(), closedAt: 0 };
      void raw.answer.then(() => (entry.closedAt = performance.now()));
      slow.push(entry);
      await sleep(2); // in order of age
    }
    await until(() => slow.filter((s) => s.raw.closed()).length >= 10, 3_000, 'the 10 oldest to be closed');
    assert.deepEqual(
      slow.slice(0, 10).map((s) => s.raw.closed()),
      Array.from({ length: 10 }, () => true),
      'the oldest 10 are closed first',
    );
    const started = performance.now();
    const legit = await within(connect(target.url), 2_000, 'a real client to connect while the cap is held');
    t.after(() => legit.destroy());
    assert.equal(await legit.client(Echo).echo('in'), 'in');
    assert.ok(performance.now() - started < 1_000, 'the real client connected at once');
    await until(() => slow.every((s) => s.raw.closed()), 3_000, 'every slow upgrade to be closed');
    const heldMs = Math.max(...slow.map((s) => s.closedAt - s.openedAt));
    assert.ok(heldMs < 1_000 * 1.5 + 200, `a slow upgrade was held ${heldMs.toFixed(0)} ms`);
    await assertClosedWith(target, 'GW_ERR_HANDSHAKE_TIMEOUT');
    const calm = await assertClosedWith(target, 'GW_ERR_ENHANCE_YOUR_CALM');
    assert.match(calm, /maxPendingHandshakes/);
    assertCanaryHealthy(target, await canary.stop(), 'T-D10 slow upgrades');
    rss.assertUnder(32, 'T-D10 slow upgrades'); // 40 sockets and their sessions
  });

  void test('T-D10 attach: upgraded connections that never send a HELLO are closed after handshakeTimeoutMs, the oldest first beyond maxPendingHandshakes', { timeout: 20_000 }, async (t) => {
    const app = await appServer(t);
    const attached = attachEcho(t, app, { path: '/gw', handshakeTimeoutMs: 800, maxPendingHandshakes: 5 });
    const silent: { closed: Promise<number>; isClosed: () => boolean }[] = [];
    for (let i = 0; i < 8; i++) {
      const ws = new WebSocket(attached.url, { perMessageDeflate: false });
      ws.on('error', () => undefined);
      t.after(() => ws.terminate());
      let isClosed = false;
      const closed = new Promise<number>((resolve) =>
        ws.once('close', (code: number) => {
          isClosed = true;
          resolve(code);
        }),
      );
      await within(once(ws, 'open'), 3_000, 'silent client open');
      silent.push({ closed, isClosed: () => isClosed });
      await sleep(2);
    }
    await until(() => silent.slice(0, 3).every((s) => s.isClosed()), 2_000, 'the 3 oldest to make room');
    assert.ok(silent.slice(3).every((s) => !s.isClosed()), 'the newest 5 still held');
    const started = performance.now();
    await within(Promise.all(silent.map((s) => s.closed)), 2_000, 'the rest to be closed by the handshake deadline');
    assert.ok(performance.now() - started < 1_500);
    // the acceptor logs a closed handshake once its session has closed, which the client's 'close' event does not
    // wait for: under load the check right after it found only the make-room line
    await until(() => attached.logs.some((l) => l.message.includes('GW_ERR_HANDSHAKE_TIMEOUT')), 2_000, 'the acceptor to log GW_ERR_HANDSHAKE_TIMEOUT');
    const client = await within(connect(attached.url), 3_000, 'a real client');
    t.after(() => client.destroy());
    assert.equal(await client.client(Echo).echo('ok'), 'ok');
  });
});
