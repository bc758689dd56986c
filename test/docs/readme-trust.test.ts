/**
 * The trust example (TLS, mutual TLS, tokens, authorize, certificate rotation, WebSocket, attach, a mesh over mutual
 * TLS; docs/ARCHITECTURE.md "Trust in one screen", linked from the README), run as a test with certificates from the
 * test PKI: if the example stops working, this fails. Kept in step with it by hand; ports are 0 and hosts loopback,
 * and what the example only states is asserted.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';

import { attach, connect, defineService, listen, Mesh, RpcError, serve, Status, unary, type RpcSession } from '../../src/index.js';
import { testPki } from '../fixtures/certs.js';
import { rejectsWithStatus, within } from '../helpers.js';

const Files = defineService('files.v1', {
  stat: unary<{ path: string }, { size: number }>(),
  raw: unary({ codec: 'raw' }),
});

void test('the README trust example works as written', { timeout: 20_000 }, async (t) => {
  const pki = testPki();
  const { key, cert } = pki.server;
  const ca = pki.ca;
  const files = serve(Files, { stat: () => ({ size: 42 }), raw: (bytes) => bytes });
  const token = 'agent-token-1';
  const tokens = new Set([token]);
  const logs: string[] = [];
  const opened: RpcSession[] = [];
  t.after(() => opened.forEach((s) => s.destroy()));

  const server = await listen('tls://127.0.0.1:0', {
    services: [files],
    tls: { key, cert, ca, requestCert: true },
    auth: { verify: async (candidate) => tokens.has(candidate) },
    authorize: (ctx) => ctx.method !== 'files.v1/raw' || ctx.peer.identity?.commonName === 'ops' || 'ops only',
    log: (level, message) => logs.push(`${level} ${message}`),
  });
  t.after(() => server.close({ graceMs: 0 }));
  const clientTls = { ca, key: pki.client.key, cert: pki.client.cert, servername: 'localhost' };
  const agent = await connect(server.url, { tls: clientTls, auth: { token } });
  opened.push(agent);
  assert.equal(agent.peer.identity?.commonName, 'localhost', "the server's verified certificate");
  assert.equal((await agent.client(Files).stat({ path: '/' })).size, 42);
  const refused = await rejectsWithStatus(agent.client(Files).raw(new Uint8Array([1])), Status.PERMISSION_DENIED, 'raw as client-1');
  assert.match(refused.message, /ops only/);
  // an ops certificate may call raw
  const ops = pki.issue({ commonName: 'ops' });
  const opsAgent = await connect(server.url, { tls: { ...clientTls, key: ops.key, cert: ops.cert }, auth: { token } });
  opened.push(opsAgent);
  assert.deepEqual(await opsAgent.client(Files).raw(new Uint8Array([7])), new Uint8Array([7]));
  // a wrong token and a missing certificate are both UNAUTHENTICATED, a refused one UNAVAILABLE; the token never shows
  const wrong = await rejectsWithStatus(connect(server.url, { tls: clientTls, auth: { token: 'not-it' } }), Status.UNAUTHENTICATED, 'a wrong token');
  assert.match(wrong.message, /auth\.token/);
  await rejectsWithStatus(connect(server.url, { tls: { ca: clientTls.ca }, auth: { token } }), Status.UNAUTHENTICATED, 'no certificate');
  await rejectsWithStatus(connect(server.url, { tls: { ...clientTls, key: pki.rogueClient.key, cert: pki.rogueClient.cert }, auth: { token } }), Status.UNAVAILABLE, 'a rogue certificate');
  assert.ok(!logs.some((line) => line.includes('not-it') || line.includes(token)), 'no token in the log');

  // rotation: connections from now on see the new certificate, the open one keeps working
  const rotated = pki.issue({ commonName: 'localhost', dnsNames: ['localhost'], ips: ['127.0.0.1'] });
  server.setSecureContext({ key: rotated.key, cert: rotated.cert, ca, requestCert: true });
  const afterRotation = await connect(server.url, { tls: clientTls, auth: { token } });
  opened.push(afterRotation);
  assert.notEqual(afterRotation.peer.identity?.fingerprint256, agent.peer.identity?.fingerprint256);
  assert.equal((await agent.client(Files).stat({ path: '/' })).size, 42);

  // WebSocket: its own port, or an http app's, which keeps its routes
  const wsServer = await listen('ws://127.0.0.1:0/gridwire', { services: [files] });
  t.after(() => wsServer.close({ graceMs: 0 }));
  const httpServer = createHttpServer((_request, response) => response.end('the app'));
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const attached = attach(httpServer, { path: '/gridwire', services: [files] });
  t.after(async () => {
    await attached.close({ graceMs: 0 });
    httpServer.closeAllConnections();
    await new Promise((resolve) => httpServer.close(resolve));
  });
  const appPort = (httpServer.address() as AddressInfo).port;
  for (const url of [wsServer.url, `ws://127.0.0.1:${appPort}/gridwire`]) {
    const session = await connect(url);
    opened.push(session);
    assert.equal((await session.client(Files).stat({ path: '/' })).size, 42, url);
  }
  assert.equal(await (await fetch(`http://127.0.0.1:${appPort}/`)).text(), 'the app');
  const wssServer = await listen('wss://127.0.0.1:0/gridwire', { services: [files], tls: { key, cert } });
  t.after(() => wssServer.close({ graceMs: 0 }));
  const overWss = await connect(wssServer.url, { tls: { ca } });
  opened.push(overWss);
  assert.equal(overWss.peer.transport, 'wss');
  assert.equal((await overWss.client(Files).stat({ path: '/' })).size, 42);

  // a mesh over mutual TLS: each node's name is in its certificate
  const nodes = ['n1', 'n2'].map((name) => ({ name, ...pki.node(name) }));
  const n2 = new Mesh({ name: 'n2', listen: 'tls://127.0.0.1:0', services: [files], peers: { n1: null }, tls: { key: nodes[1]!.key, cert: nodes[1]!.cert, ca }, log: () => undefined });
  await n2.start();
  t.after(() => n2.stop({ graceMs: 0 }));
  const n1 = new Mesh({ name: 'n1', services: [files], peers: { n2: n2.url! }, tls: { key: nodes[0]!.key, cert: nodes[0]!.cert, ca }, fallbackDialAfterMs: 0, log: () => undefined });
  await n1.start();
  t.after(() => n1.stop({ graceMs: 0 }));
  const size = await within(n1.peer('n2').client(Files).stat({ path: '/' }, { waitForReady: true, timeoutMs: 5_000 }), 6_000, 'a call n1 -> n2');
  assert.equal(size.size, 42);
  assert.ok(refused instanceof RpcError);
});
