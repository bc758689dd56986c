/**
 * attach(httpServer, { path, ... }) (src/endpoint/attach.ts): gridwire on the port of an application's own http or
 * https server. The application keeps answering its routes, and its own WebSocket path keeps working, while sessions
 * run; an upgrade for a path nobody takes is answered 404; close() closes gridwire's sessions and its upgrade
 * listener only; maxConnections counts gridwire's sessions; wss:// follows the https server's own TLS settings.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer, get, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, get as httpsGet } from 'node:https';
import type { Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';

import { attach, connect, Status, type AttachOptions, type Server } from '../../src/index.js';
import { testPki } from '../fixtures/certs.js';
import { clientTls, Who, whoService } from '../fixtures/tls.js';
import { Echo, echoService } from '../fixtures/echo-service.js';
import { connectTo, type LogLine } from '../fixtures/connections.js';
import { rejectsWithStatus, until, within } from '../helpers.js';

/** An application's http server answering GET / with "app" (and every other route with 418), listening on a free port. */
async function appServer(t: TestContext, server: HttpServer = createHttpServer()): Promise<HttpServer> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('request', (req: IncomingMessage, res) => {
    res.writeHead(req.url === '/' ? 200 : 418, { 'Content-Type': 'text/plain' });
    res.end(req.url === '/' ? 'app' : 'teapot');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await within(new Promise((resolve) => server.close(resolve)), 3_000, 'the app server to close');
  });
  return server;
}

/** attach() with the echo service and a log, its sessions destroyed and the attachment closed after the test. */
function attachEcho(t: TestContext, server: HttpServer, options: Partial<AttachOptions> = {}): { gw: Server; logs: LogLine[] } {
  const logs: LogLine[] = [];
  const gw = attach(server, { path: '/gridwire', services: [echoService()], log: (level, message) => logs.push({ level, message }), ...options });
  t.after(async () => {
    for (const s of gw.sessions) s.destroy();
    await within(gw.close({ graceMs: 0 }), 3_000, 'gridwire to detach');
  });
  return { gw, logs };
}

function portOf(server: HttpServer): number {
  return (server.address() as { port: number }).port;
}

/** GET `path` on the app: status and body. */
async function httpGet(server: HttpServer, path: string): Promise<{ status: number; body: string }> {
  const req = get({ host: '127.0.0.1', port: portOf(server), path, agent: false });
  const [res] = (await within(once(req, 'response'), 3_000, `GET ${path}`)) as [IncomingMessage];
  let body = '';
  for await (const chunk of res) body += String(chunk);
  return { status: res.statusCode ?? 0, body };
}

/** The HTTP status a raw WebSocket upgrade to `path` gets (101 when it is upgraded). */
async function upgradeStatus(port: number, path: string): Promise<number> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { perMessageDeflate: false });
  try {
    const status = await within(
      new Promise<number>((resolve) => {
        ws.once('upgrade', () => resolve(101));
        ws.once('unexpected-response', (_req, res: IncomingMessage) => resolve(res.statusCode ?? 0));
        ws.once('error', () => resolve(-1));
      }),
      3_000,
      `upgrade to ${path}`,
    );
    return status;
  } finally {
    ws.terminate();
  }
}

void describe('attach() on an application http server', () => {
  void test('the app keeps answering GET / (and its other routes) while gridwire sessions run calls on the same port', { timeout: 15_000 }, async (t) => {
    const app = await appServer(t);
    const { gw } = attachEcho(t, app);
    assert.equal(gw.url, `ws://127.0.0.1:${portOf(app)}/gridwire`);
    const session = await connectTo(t, gw.url);
    const echo = session.client(Echo);
    for (let round = 0; round < 20; round++) {
      const [reply, page, other] = await Promise.all([echo.echo(round), httpGet(app, '/'), httpGet(app, '/x')]);
      assert.equal(reply, round);
      assert.deepEqual(page, { status: 200, body: 'app' });
      assert.deepEqual(other, { status: 418, body: 'teapot' });
    }
    assert.equal(gw.sessions.size, 1);
    assert.equal(session.peer.transport, 'ws');
    const [serverSession] = gw.sessions;
    assert.match(serverSession!.peer.address, /^ws:\/\/127\.0\.0\.1:\d+$/);
  });

  void test("the app's own WebSocket path keeps working beside gridwire's, whichever upgrade listener came first", { timeout: 15_000 }, async (t) => {
    for (const appFirst of [true, false]) {
      const app = await appServer(t);
      const appWss = new WebSocketServer({ noServer: true });
      appWss.on('connection', (ws) => ws.on('message', (data) => ws.send(`app:${String(data)}`)));
      const appUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer): void => {
        if (req.url === '/app-ws') appWss.handleUpgrade(req, socket, head, (ws) => appWss.emit('connection', ws, req));
      };
      if (appFirst) app.on('upgrade', appUpgrade);
      const { gw } = attachEcho(t, app);
      if (!appFirst) app.on('upgrade', appUpgrade);
      const session = await connectTo(t, gw.url);
      const client = new WebSocket(`ws://127.0.0.1:${portOf(app)}/app-ws`);
      t.after(() => client.terminate());
      await within(once(client, 'open'), 3_000, "the app's WebSocket to open");
      client.send('hi');
      const [reply] = (await within(once(client, 'message'), 3_000, "the app's reply")) as [Buffer];
      assert.equal(String(reply), 'app:hi');
      assert.equal(await session.client(Echo).echo('gw'), 'gw');
    }
  });

  void test('an upgrade for a path nobody takes is answered 404 when gridwire is the only upgrade listener; the path is matched exactly', { timeout: 10_000 }, async (t) => {
    const app = await appServer(t);
    attachEcho(t, app);
    const port = portOf(app);
    assert.equal(await upgradeStatus(port, '/gridwire'), 101);
    assert.equal(await upgradeStatus(port, '/gridwire?tenant=a'), 101, 'a query string does not change the path');
    for (const path of ['/other', '/gridwire/', '/GRIDWIRE', '/gridwire%2F', '//gridwire']) {
      assert.equal(await upgradeStatus(port, path), 404, path);
    }
  });

  void test("close() closes gridwire's sessions and its upgrade listener, not the app's server", { timeout: 10_000 }, async (t) => {
    const app = await appServer(t);
    const { gw } = attachEcho(t, app);
    const session = await connectTo(t, gw.url);
    assert.equal(await session.client(Echo).echo(1), 1);
    await within(gw.close(), 3_000, 'gridwire to close');
    await within(session.closed, 3_000, 'the session to close');
    assert.equal(gw.sessions.size, 0);
    assert.equal(app.listenerCount('upgrade'), 0, 'the upgrade listener is gone');
    assert.ok(app.listening, 'the app still listens');
    assert.deepEqual(await httpGet(app, '/'), { status: 200, body: 'app' });
    await rejectsWithStatus(connect(gw.url, { connectTimeoutMs: 2_000 }), Status.UNAVAILABLE, 'connect after close');
  });

  void test('before the server listens, url is empty; attaching first and listening later works', { timeout: 10_000 }, async (t) => {
    const app = createHttpServer();
    const { gw } = attachEcho(t, app);
    assert.equal(gw.url, '');
    await appServer(t, app);
    assert.equal(gw.url, `ws://127.0.0.1:${portOf(app)}/gridwire`);
    const session = await connectTo(t, gw.url);
    assert.equal(await session.client(Echo).echo('late'), 'late');
  });

  void test('maxConnections counts gridwire sessions: an upgrade beyond is refused with 503 and logged once; closing one makes room', { timeout: 10_000 }, async (t) => {
    const app = await appServer(t);
    const { gw, logs } = attachEcho(t, app, { maxConnections: 2 });
    const a = await connectTo(t, gw.url);
    await connectTo(t, gw.url);
    assert.equal(await upgradeStatus(portOf(app), '/gridwire'), 503);
    const error = await rejectsWithStatus(connect(gw.url, { connectTimeoutMs: 2_000 }), Status.UNAVAILABLE, 'a third client');
    assert.match(error.message, /503/);
    const warnings = logs.filter((l) => l.level === 'warn');
    assert.equal(warnings.length, 1, JSON.stringify(logs));
    assert.match(warnings[0]!.message, /GW_ERR_ENHANCE_YOUR_CALM.*maxConnections/);
    assert.deepEqual(await httpGet(app, '/'), { status: 200, body: 'app' }, 'the app is not limited');
    a.destroy();
    await until(() => gw.sessions.size === 1, 3_000, 'the closed session to leave');
    const c = await connectTo(t, gw.url);
    assert.equal(await c.client(Echo).echo('room'), 'room');
  });

  void test('a path that is not one is a TypeError', () => {
    const app = createHttpServer();
    for (const path of [undefined, '', 'gridwire', '/a b', '/x?y']) {
      assert.throws(() => attach(app, { path: path as string }), TypeError, String(path));
    }
  });
});

void describe('attach() on an application https server', () => {
  void test('T-Z1 wss:// with the https server\'s mutual TLS: GET / and gridwire calls on one port; ctx.peer is wss; a client without a certificate is refused', { timeout: 15_000 }, async (t) => {
    const pki = testPki();
    const https = createHttpsServer({ key: pki.server.key, cert: pki.server.cert, ca: pki.ca, requestCert: true });
    const app = await appServer(t, https);
    const { gw } = attachEcho(t, app);
    assert.equal(gw.url, `wss://127.0.0.1:${portOf(app)}/gridwire`);
    const clientTls = { ca: pki.ca, key: pki.client.key, cert: pki.client.cert };
    const session = await connectTo(t, gw.url, { tls: clientTls });
    assert.equal(await session.client(Echo).echo('secure'), 'secure');
    assert.equal(session.peer.transport, 'wss');
    const [serverSession] = gw.sessions;
    assert.equal(serverSession!.peer.transport, 'wss');
    const req = httpsGet({ host: '127.0.0.1', port: portOf(app), path: '/', agent: false, ...clientTls });
    const [res] = (await within(once(req, 'response'), 3_000, 'GET / over https')) as [IncomingMessage];
    res.resume();
    assert.equal(res.statusCode, 200);
    await rejectsWithStatus(connect(gw.url, { tls: { ca: pki.ca }, connectTimeoutMs: 3_000 }), Status.UNAUTHENTICATED, 'no client certificate');
    assert.equal(gw.sessions.size, 1, 'the refused client never got a session (its TLS failed before the upgrade)');
  });

  void test('T-Z1 an https server that lets unverified client certificates through (requestCert, rejectUnauthorized: false): a rogue-CA or expired certificate is refused at the upgrade (403, one warn line), no handler runs, no identity is claimed; a verified one has its identity, one without a certificate none', { timeout: 20_000 }, async (t) => {
    const pki = testPki();
    const https = createHttpsServer({ key: pki.server.key, cert: pki.server.cert, ca: pki.ca, requestCert: true, rejectUnauthorized: false });
    const app = await appServer(t, https);
    const calls = { count: 0 };
    const logs: LogLine[] = [];
    const gw = attach(app, { path: '/gridwire', services: [whoService(calls)], log: (level, message) => logs.push({ level, message }) });
    t.after(async () => {
      for (const s of gw.sessions) s.destroy();
      await within(gw.close({ graceMs: 0 }), 3_000, 'gridwire to detach');
    });
    const admin = pki.issue({ commonName: 'admin', dnsNames: ['admin'], signer: 'rogue' });
    for (const [what, pair, code] of [['rogue CA', admin, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/], ['expired', pki.expiredClient, /CERT_HAS_EXPIRED/]] as const) {
      const before = logs.length;
      const error = await rejectsWithStatus(connect(gw.url, { tls: clientTls(pair), connectTimeoutMs: 3_000 }), Status.UNAUTHENTICATED, what);
      assert.match(error.message, /403/, `${what}: ${error.message}`);
      await until(() => logs.length > before, 3_000, `${what}: a log line`);
      const lines = logs.slice(before).filter((l) => l.level === 'warn');
      assert.equal(lines.length, 1, `${what}: one warn line: ${JSON.stringify(lines)}`);
      assert.match(lines[0]!.message, /refused the WebSocket upgrade/);
      assert.match(lines[0]!.message, code);
    }
    assert.equal(calls.count, 0, 'no handler ran for an unverified certificate');
    assert.equal(gw.sessions.size, 0);
    const verified = await connectTo(t, gw.url, { tls: clientTls() });
    assert.equal((await verified.client(Who).whoami(null)).commonName, 'client-1');
    const anonymous = await connectTo(t, gw.url, { tls: clientTls(null) });
    assert.equal((await anonymous.client(Who).whoami(null)).commonName, undefined, 'no certificate: no identity');
  });
});
