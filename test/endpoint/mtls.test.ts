/**
 * T-Z1 mutual TLS (reliability.md §4 E) on listen() and connect(): a client without a certificate, with one from
 * another CA, with an expired one, or offering only TLS 1.2 to a server that requires 1.3, fails the TLS handshake:
 * connect() rejects (UNAUTHENTICATED when the server's TLS alert says a certificate is required; UNAVAILABLE, with the
 * likely reasons, when it just hangs up after TLS), the server logs one line, and no handler runs, not even for a
 * raw client that sends its call in the same flight as the end of its TLS handshake. The same for a server
 * certificate the client does not accept. A valid pair gives each side the other's verified certificate in
 * `session.peer.identity` and `ctx.peer.identity`. A channel told by an alert that it needs a certificate waits its
 * longest backoff between dials, as for a protocol version mismatch; a TLS server that hangs up right after TLS for
 * any other reason (not gridwire, its handshake deadline) is UNAVAILABLE, not a certificate refusal.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createServer as createTlsServer } from 'node:tls';
import { describe, test, type TestContext } from 'node:test';

import { channel, connect, RpcError, Status, type LinkStateEvent, type RpcSession } from '../../src/index.js';
import { testPki } from '../fixtures/certs.js';
import { connectTo, type LogLine } from '../fixtures/connections.js';
import { clientTls, rawTlsCall, serverTls, startTlsServer, Who, whoService } from '../fixtures/tls.js';
import { deferred, rejectsWithStatus, sleep, until, within } from '../helpers.js';

const TEST_MS = 15_000;

/** A mutual-TLS server with the counted Who service; `calls.count` says how many handlers ran. */
async function countedServer(t: TestContext, tls = serverTls()): Promise<{ url: string; logs: LogLine[]; calls: { count: number } }> {
  const calls = { count: 0 };
  const { server, logs } = await startTlsServer(t, { tls, services: [whoService(calls)] });
  return { url: server.url, logs, calls };
}

/** The server's one warn line (waits for it: the server's side of a refusal may come a moment after the client's). */
async function oneWarnLine(logs: readonly LogLine[], what: string): Promise<string> {
  await until(() => logs.some((l) => l.level === 'warn'), 2_000, `${what}: the server's warn line`);
  await sleep(50);
  const lines = logs.filter((l) => l.level === 'warn');
  assert.equal(lines.length, 1, `${what}: one warn line, got ${JSON.stringify(logs)}`);
  return lines[0]!.message;
}

void describe('T-Z1 mutual TLS', () => {
  void test('T-Z1 no client certificate: connect() rejects UNAUTHENTICATED "the server requires a client certificate: set tls.cert and tls.key"; one server line; no handler', { timeout: TEST_MS }, async (t) => {
    const { url, logs, calls } = await countedServer(t);
    const error = await rejectsWithStatus(connect(url, { tls: clientTls(null) }), Status.UNAUTHENTICATED, 'connect without a certificate');
    assert.match(error.message, /the server requires a client certificate: set tls\.cert and tls\.key/);
    assert.match(await oneWarnLine(logs, 'no certificate'), /TLS handshake with tls:\/\/127\.0\.0\.1:\d+ failed: the peer presented no client certificate/);
    const raw = await rawTlsCall(t, url, clientTls(null));
    assert.equal(raw.received, 0, 'not a byte to a client without a certificate');
    assert.equal(calls.count, 0, 'no handler ran');
  });

  void test('T-Z1 a client certificate from another CA: UNAVAILABLE (the server hangs up after TLS, no alert) saying it may have refused our certificate; the server names the certificate and says its CA is not trusted; no handler', { timeout: TEST_MS }, async (t) => {
    const { url, logs, calls } = await countedServer(t);
    const error = await rejectsWithStatus(connect(url, { tls: clientTls(testPki().rogueClient) }), Status.UNAVAILABLE, 'connect with a rogue certificate');
    assert.match(error.message, /right after the TLS handshake, before a byte: it may have refused our client certificate .*its log says which/);
    const line = await oneWarnLine(logs, 'rogue CA');
    assert.match(line, /refused a TLS connection from tls:\/\/127\.0\.0\.1:\d+: its certificate \(CN=client-1, URI:spiffe:\/\/gridwire\.test\/client-1\) is not signed by a CA this side trusts \(tls\.ca\)/);
    const raw = await rawTlsCall(t, url, clientTls(testPki().rogueClient));
    assert.ok(raw.secured, 'TLS 1.3: the client finishes its side before the server checks its certificate');
    assert.equal(raw.received, 0, 'the server closes before it writes a byte (its HELLO included)');
    assert.equal(calls.count, 0, 'the call sent with the end of the TLS handshake never reached a handler');
  });

  void test('T-Z1 an expired client certificate: UNAVAILABLE, as for another CA; the server says it has expired; no handler', { timeout: TEST_MS }, async (t) => {
    const { url, logs, calls } = await countedServer(t);
    await rejectsWithStatus(connect(url, { tls: clientTls(testPki().expiredClient) }), Status.UNAVAILABLE, 'connect with an expired certificate');
    assert.match(await oneWarnLine(logs, 'expired'), /its certificate \(CN=client-1.*\) has expired \(CERT_HAS_EXPIRED\)/);
    const raw = await rawTlsCall(t, url, clientTls(testPki().expiredClient));
    assert.equal(raw.received, 0);
    assert.equal(calls.count, 0);
  });

  void test('T-Z1 a TLS 1.2-only client when the server requires TLS 1.3 (the default): the handshake fails, the server says no version is shared; no handler', { timeout: TEST_MS }, async (t) => {
    const { url, logs, calls } = await countedServer(t);
    // the server's protocol_version alert reaches the client (FAILED_PRECONDITION: it says so) unless the server's
    // close overtakes it (UNAVAILABLE: the server closed during the TLS handshake); either way the message says what
    const error = await connect(url, { tls: clientTls(undefined, { maxVersion: 'TLSv1.2' }) }).then(() => assert.fail('connect with TLS 1.2 only resolved'), (e: unknown) => e);
    assert.ok(error instanceof RpcError && (error.code === Status.FAILED_PRECONDITION || error.code === Status.UNAVAILABLE), String(error));
    assert.match(error.message, /share no TLS version .*tls\.minVersion|during the TLS handshake/);
    assert.match(await oneWarnLine(logs, 'TLS 1.2'), /failed: the peer offered no TLS version this side accepts \(unsupported protocol/);
    const raw = await rawTlsCall(t, url, clientTls(undefined, { maxVersion: 'TLSv1.2' }));
    assert.ok(!raw.secured);
    assert.equal(calls.count, 0);
  });

  void test('TLS 1.2 is allowed by option: a server with minVersion TLSv1.2 takes the 1.2-only client', { timeout: TEST_MS }, async (t) => {
    const { url, calls } = await countedServer(t, serverTls({ minVersion: 'TLSv1.2' }));
    const session = await connectTo(t, url, { tls: clientTls(undefined, { maxVersion: 'TLSv1.2' }) });
    assert.equal((await session.client(Who).whoami(null)).commonName, 'client-1');
    assert.equal(calls.count, 1);
  });

  void test('T-Z1 the client refuses a server certificate from another CA, an expired one, or one for another name (UNAUTHENTICATED), before it sends a byte: no handler', { timeout: TEST_MS }, async (t) => {
    const pki = testPki();
    const expiredServer = pki.issue({ commonName: 'localhost', dnsNames: ['localhost'], ips: ['127.0.0.1'], notBefore: '20200101000000Z', notAfter: '20200102000000Z' });
    const cases: Array<[string, ReturnType<typeof serverTls>, ReturnType<typeof clientTls>, RegExp]> = [
      ['another CA', serverTls(), clientTls(undefined, { ca: pki.rogueCa }), /the server's certificate is not signed by a CA this side trusts \(tls\.ca\)/],
      ['expired', serverTls({ key: expiredServer.key, cert: expiredServer.cert }), clientTls(), /the server's certificate has expired \(CERT_HAS_EXPIRED\)/],
      ['another name', serverTls(), clientTls(undefined, { servername: 'elsewhere.test' }), /the server's certificate is not for the name dialed.*elsewhere\.test/],
    ];
    for (const [what, server, client, says] of cases) {
      const { url, calls } = await countedServer(t, server);
      const error = await rejectsWithStatus(connect(url, { tls: client }), Status.UNAUTHENTICATED, what);
      assert.match(error.message, says, what);
      assert.match(error.message, /^UNAUTHENTICATED: dial tls:/, `${what}: refused while dialing, before the session sent its HELLO`);
      // Node's client checks the server's certificate once OpenSSL has finished the handshake and sends no alert:
      // the server sees a client that left before its HELLO, nothing to log
      const raw = await rawTlsCall(t, url, { ...client, servername: client.servername ?? 'localhost' });
      assert.ok(!raw.secured && raw.error !== undefined, `${what}: the raw client refuses the server too`);
      assert.equal(calls.count, 0, what);
    }
  });

  void test('T-Z1 valid certificates: each side has the other\'s verified certificate in session.peer.identity and ctx.peer.identity', { timeout: TEST_MS }, async (t) => {
    const pki = testPki();
    const calls = { count: 0 };
    const accepted = deferred<RpcSession>();
    const { server } = await startTlsServer(t, { services: [whoService(calls)], onSession: (s) => accepted.resolve(s) });
    const dialer = await connectTo(t, server.url, { tls: clientTls(), services: [whoService(calls)], nodeName: 'agent-7' });
    const acceptor = await within(accepted.promise, 2_000, 'the server session');
    const serverCert = new X509Certificate(pki.server.cert);
    const clientCert = new X509Certificate(pki.client.cert);

    // the dialer sees the server's certificate
    assert.equal(dialer.peer.transport, 'tls');
    assert.match(dialer.peer.address, /^tls:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(dialer.peer.identity?.fingerprint256, serverCert.fingerprint256);
    assert.deepEqual(dialer.peer.identity?.dnsNames, ['localhost']);
    assert.deepEqual(dialer.peer.identity?.ips, ['127.0.0.1', '0:0:0:0:0:0:0:1']);
    assert.equal(dialer.peer.identity?.validTo.getTime(), new Date(serverCert.validTo).getTime());
    // the acceptor sees the client's
    assert.equal(acceptor.peer.transport, 'tls');
    assert.equal(acceptor.peer.nodeName, 'agent-7');
    assert.equal(acceptor.peer.identity?.fingerprint256, clientCert.fingerprint256);
    assert.equal(acceptor.peer.identity?.commonName, 'client-1');
    assert.deepEqual(acceptor.peer.identity?.subject, Object.assign(Object.create(null) as object, { CN: 'client-1' }));
    assert.deepEqual(acceptor.peer.identity?.uris, ['spiffe://gridwire.test/client-1']);

    // handlers: the server's sees the client, the dialer's (called back by the server) sees the server
    const fromServer = await dialer.client(Who).whoami(null);
    assert.deepEqual(fromServer, { nodeName: 'agent-7', transport: 'tls', commonName: 'client-1', uris: ['spiffe://gridwire.test/client-1'], fingerprint256: clientCert.fingerprint256 });
    const fromDialer = await acceptor.client(Who).whoami(null);
    assert.deepEqual(fromDialer, { nodeName: '', transport: 'tls', commonName: 'localhost', uris: [], fingerprint256: serverCert.fingerprint256 });
    assert.equal(calls.count, 2);
  });

  void test('a server without requestCert: the client presents none, the server\'s peer has no identity; the client still checks the server', { timeout: TEST_MS }, async (t) => {
    const accepted = deferred<RpcSession>();
    const { server } = await startTlsServer(t, { tls: serverTls({ requestCert: false }), services: [whoService()], onSession: (s) => accepted.resolve(s) });
    const dialer = await connectTo(t, server.url, { tls: clientTls(null) });
    const acceptor = await within(accepted.promise, 2_000, 'the server session');
    assert.equal(acceptor.peer.identity, undefined);
    assert.equal('identity' in acceptor.peer && acceptor.peer.identity !== undefined, false);
    assert.equal(dialer.peer.identity?.commonName, 'localhost');
    assert.equal((await dialer.client(Who).whoami(null)).fingerprint256, undefined);
  });

  void test('a TLS server that hangs up right after TLS without an alert (not gridwire, or busy) is UNAVAILABLE, not "the server requires a client certificate", with or without one', { timeout: TEST_MS }, async (t) => {
    const pki = testPki();
    const hangsUp = createTlsServer({ key: pki.server.key, cert: pki.server.cert }, (socket) => socket.destroy());
    await new Promise<void>((resolve) => hangsUp.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => hangsUp.close(() => resolve())));
    const url = `tls://127.0.0.1:${(hangsUp.address() as { port: number }).port}`;
    const bare = await rejectsWithStatus(connect(url, { tls: clientTls(null) }), Status.UNAVAILABLE, 'no client certificate');
    assert.match(bare.message, /right after the TLS handshake, before a byte: if it requires a client certificate, set tls\.cert and tls\.key; it may also have been too busy/);
    const withCert = await rejectsWithStatus(connect(url, { tls: clientTls() }), Status.UNAVAILABLE, 'a client certificate');
    assert.match(withCert.message, /it may have refused our client certificate .* or was too busy to take the connection/);
  });

  void test('a channel without the client certificate the server requires (its TLS alert says so) waits its longest backoff between dials, as for a protocol version mismatch', { timeout: TEST_MS }, async (t) => {
    const { url, calls } = await countedServer(t);
    const maxDelayMs = 400;
    const ch = channel(url, { tls: clientTls(null), reconnect: { initialDelayMs: 1, maxDelayMs }, log: () => undefined });
    t.after(() => within(ch.close({ graceMs: 0 }), 3_000, 'channel close'));
    const backoffs: LinkStateEvent[] = [];
    ch.on('state', (event) => {
      if (event.state === 'backoff') backoffs.push(event);
    });
    await until(() => backoffs.length >= 3, 5_000, 'three failed dials');
    for (const event of backoffs) {
      assert.ok(event.delayMs! >= maxDelayMs / 2, `a delay of ${event.delayMs} ms: not the longest (0.5-1 x ${maxDelayMs})`);
      assert.match(event.error!.message, /UNAUTHENTICATED/);
    }
    assert.equal(calls.count, 0);
  });
});
