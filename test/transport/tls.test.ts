/**
 * tls:// end to end: the address and its options (what is refused, with a TypeError that names the option and never
 * its value), calls both ways and bulk transfers over mutual TLS, the clear errors of T-Z4 when a plain client meets
 * a TLS port and a TLS client a plain one (both sides), and certificate rotation with server.setSecureContext.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { describe, test, type TestContext } from 'node:test';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';

import { channel, connect, listen, RpcError, serve, Status, type RpcSession } from '../../src/index.js';
import { parseAddress } from '../../src/transport/address.js';
import { dialTls, listenTls } from '../../src/transport/tls.js';
import type { Transport } from '../../src/transport/transport.js';
import { Bulk, MiB, patternChunks, patternSha256, Tally } from '../fixtures/bulk.js';
import { testPki } from '../fixtures/certs.js';
import { connectTo, oneWarning, startServer } from '../fixtures/connections.js';
import { clientTls, serverTls, startTlsServer, Who, whoService } from '../fixtures/tls.js';
import { deferred, helloFrame, rejectsWithStatus, sleep, until, within } from '../helpers.js';
import { meterTurns, patternedBytes } from '../fixtures/turn-meter.js';

const TEST_MS = 15_000;
const quiet = { log: (): void => undefined };

/** The error `promise` rejects with (fails if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => assert.fail('expected a rejection'),
    (error: unknown) => error as Error,
  );
}

void describe('tls:// addresses and options', () => {
  void test('tls://host:port and tls://[::1]:port parse; a malformed one is a TypeError showing the tls:// form', () => {
    assert.deepEqual(parseAddress('tls://example.test:7443'), { kind: 'tls', host: 'example.test', port: 7443 });
    assert.deepEqual(parseAddress('tls://[::1]:7443'), { kind: 'tls', host: '::1', port: 7443 });
    assert.throws(() => parseAddress('tls://example.test'), (e: Error) => e instanceof TypeError && /use tls:\/\/host:port/.test(e.message));
    assert.throws(() => parseAddress('tlss://x:1'), (e: Error) => e instanceof TypeError && /tls:\/\/host:port for TLS/.test(e.message));
  });

  void test('listen on tls:// without tls options, or without its key or certificate: a TypeError naming what is missing', async () => {
    const pki = testPki();
    const missing: Array<[object | undefined, RegExp]> = [
      [undefined, /needs tls options: tls\.key and tls\.cert/],
      [{ cert: pki.server.cert }, /tls\.key missing/],
      [{ key: pki.server.key }, /tls\.cert missing/],
      [{ ca: pki.ca }, /tls\.key and tls\.cert missing/],
    ];
    for (const [tls, says] of missing) {
      const error = await rejection(listen('tls://127.0.0.1:0', { tls: tls as never, ...quiet }));
      assert.ok(error instanceof TypeError, `${String(error)}`);
      assert.match(error.message, says);
    }
  });

  void test('requestCert without tls.ca is a TypeError naming tls.ca (Node would trust its bundled public roots for client certificates), on listen and on setSecureContext', { timeout: TEST_MS }, async (t) => {
    const pki = testPki();
    const says = /tls\.requestCert needs tls\.ca/;
    const error = await rejection(listen('tls://127.0.0.1:0', { tls: { key: pki.server.key, cert: pki.server.cert, requestCert: true }, ...quiet }));
    assert.ok(error instanceof TypeError && says.test(error.message), String(error));
    const wssError = await rejection(listen('wss://127.0.0.1:0/gw', { tls: { key: pki.server.key, cert: pki.server.cert, requestCert: true }, ...quiet }));
    assert.ok(wssError instanceof TypeError && says.test(wssError.message), String(wssError));
    const { server } = await startTlsServer(t, { services: [whoService()] });
    assert.throws(() => server.setSecureContext({ key: pki.server.key, cert: pki.server.cert }), (e: Error) => e instanceof TypeError && says.test(e.message));
    const session = await connectTo(t, server.url, { tls: clientTls() });
    assert.equal((await session.client(Who).whoami(null)).commonName, 'client-1', 'the old context stays');
  });

  void test('tls.secureContext is a TypeError on listen and connect (it would bypass the options gridwire builds the context from)', async () => {
    const { createSecureContext } = await import('node:tls');
    const secureContext = createSecureContext(serverTls());
    const says = /tls\.secureContext is not taken: give tls\.key, tls\.cert and tls\.ca/;
    const listenError = await rejection(listen('tls://127.0.0.1:0', { tls: { ...serverTls(), secureContext }, ...quiet }));
    assert.ok(listenError instanceof TypeError && says.test(listenError.message), String(listenError));
    const connectError = await rejection(connect('tls://127.0.0.1:1', { tls: { secureContext } }));
    assert.ok(connectError instanceof TypeError && says.test(connectError.message), String(connectError));
  });

  void test('tls options with a tcp:// address: a TypeError saying to use tls://, from listen, connect and channel', async () => {
    const says = /tls options were given for "tcp:\/\/127\.0\.0\.1:\d+", which is not a TLS address: use tls:\/\/host:port/;
    const listenError = await rejection(listen('tcp://127.0.0.1:0', { tls: serverTls(), ...quiet }));
    assert.ok(listenError instanceof TypeError && says.test(listenError.message), listenError.message);
    const connectError = await rejection(connect('tcp://127.0.0.1:1', { tls: clientTls() }));
    assert.ok(connectError instanceof TypeError && says.test(connectError.message), connectError.message);
    assert.throws(() => channel('tcp://127.0.0.1:1', { tls: clientTls(), ...quiet }), (e: Error) => e instanceof TypeError && says.test(e.message));
  });

  void test('rejectUnauthorized: false is refused on both sides with a TypeError: certificate checks cannot be turned off', async () => {
    const says = /tls\.rejectUnauthorized: false is refused: gridwire always verifies the peer's certificate/;
    const listenError = await rejection(listen('tls://127.0.0.1:0', { tls: { ...serverTls(), rejectUnauthorized: false } as never, ...quiet }));
    assert.ok(listenError instanceof TypeError && says.test(listenError.message), listenError.message);
    const connectError = await rejection(connect('tls://127.0.0.1:1', { tls: { rejectUnauthorized: false } as never }));
    assert.ok(connectError instanceof TypeError && says.test(connectError.message), connectError.message);
    assert.throws(() => channel('tls://127.0.0.1:1', { tls: { rejectUnauthorized: false } as never, ...quiet }), (e: Error) => e instanceof TypeError && says.test(e.message));
  });

  void test('a key Node cannot read: a TypeError that does not echo the key; a client certificate without its key: a TypeError', async () => {
    const secret = 'not-a-key-SECRET-1234';
    const error = await rejection(listen('tls://127.0.0.1:0', { tls: { key: secret, cert: testPki().server.cert }, ...quiet }));
    assert.ok(error instanceof TypeError, String(error));
    assert.match(error.message, /the tls options cannot be used/);
    assert.ok(!error.message.includes(secret), 'the key is not in the message');
    const half = await rejection(connect('tls://127.0.0.1:1', { tls: { cert: testPki().client.cert } }));
    assert.ok(half instanceof TypeError && /needs both tls\.cert and tls\.key: tls\.key is missing/.test(half.message), half.message);
  });

  void test('setSecureContext on a tcp:// server is a TypeError; on a tls:// one, options it cannot use throw and the old ones stay', { timeout: TEST_MS }, async (t) => {
    const { server: plain } = await startServer(t, quiet);
    assert.throws(() => plain.setSecureContext(serverTls()), (e: Error) => e instanceof TypeError && /is not a tls:\/\/ listener/.test(e.message));
    const { server } = await startTlsServer(t, { services: [whoService()] });
    assert.throws(() => server.setSecureContext({ key: 'junk', cert: 'junk' }), TypeError);
    assert.throws(() => server.setSecureContext({ ca: testPki().ca }), (e: Error) => e instanceof TypeError && /tls\.key and tls\.cert missing/.test(e.message));
    const session = await connectTo(t, server.url, { tls: clientTls() });
    assert.equal((await session.client(Who).whoami(null)).commonName, 'client-1');
  });
});

void describe('calls and bulk over tls:// with mutual TLS', () => {
  void test('unary both directions: the dialer calls the server, the server calls back the dialer', { timeout: TEST_MS }, async (t) => {
    const accepted = deferred<RpcSession>();
    const { server } = await startTlsServer(t, { services: [whoService()], onSession: (s) => accepted.resolve(s) });
    const dialer = await connectTo(t, server.url, { tls: clientTls(), services: [whoService()] });
    const acceptor = await within(accepted.promise, 2_000, 'the server session');
    const bytes = Uint8Array.from({ length: 100_000 }, (_, i) => i & 0xff);
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(await dialer.client(Who).echo(bytes), bytes);
      assert.deepEqual(await acceptor.client(Who).echo(bytes), bytes);
    }
    const concurrent = await Promise.all(Array.from({ length: 64 }, (_, i) => dialer.client(Who).echo(Uint8Array.of(i))));
    assert.deepEqual(concurrent.map((b) => b[0]), Array.from({ length: 64 }, (_, i) => i));
  });

  void test('upload and download of 24 MiB over tls://: the sha256 of what arrived matches both ways', { timeout: 30_000 }, async (t) => {
    const size = 24 * MiB + 7;
    const bulk = serve(Bulk, {
      async put(request, body) {
        const tally = new Tally();
        for await (const chunk of body) tally.add(chunk);
        return { name: request.name, bytes: tally.bytes, chunks: tally.chunks, sha256: tally.sha256 };
      },
      get: (request) => patternChunks(request.bytes),
      echo: (s) => s,
    });
    const { server } = await startTlsServer(t, { services: [bulk] });
    const session = await connectTo(t, server.url, { tls: clientTls() });
    const files = session.client(Bulk);
    const expected = patternSha256(size);
    const up = await within(files.put({ name: 'up' }, patternChunks(size)), 20_000, 'upload');
    assert.equal(up.bytes, size);
    assert.equal(up.sha256, expected);
    const down = new Tally();
    await within((async () => {
      for await (const chunk of files.get({ bytes: size })) down.add(chunk);
    })(), 20_000, 'download');
    assert.equal(down.bytes, size);
    assert.equal(down.sha256, expected);
  });
});

void describe('tls:// over IPv6', () => {
  void test('tls://[::1]:0 listens, and a client dialing it checks the certificate\'s IPv6 entry', { timeout: TEST_MS }, async (t) => {
    let server;
    try {
      ({ server } = await startServer(t, { tls: serverTls({ requestCert: false }), services: [whoService()] }, 'tls://[::1]:0'));
    } catch (error) {
      t.skip(`no IPv6 loopback here: ${(error as Error).message}`);
      return;
    }
    assert.match(server.url, /^tls:\/\/\[::1\]:\d+$/);
    const session = await connectTo(t, server.url, { tls: clientTls(null) });
    assert.match(session.peer.address, /^tls:\/\/\[::1\]:\d+$/);
    assert.deepEqual(session.peer.identity?.ips, ['127.0.0.1', '0:0:0:0:0:0:0:1']);
    assert.equal((await session.client(Who).whoami(null)).transport, 'tls');
  });
});

void describe('T-Z4 TLS and plain on the wrong port: clear errors on both sides', () => {
  void test('T-Z4 a plain tcp:// client on a TLS port: connect() says the peer closed during the handshake and to use tls://; the server says the peer did not speak TLS', { timeout: TEST_MS }, async (t) => {
    const calls = { count: 0 };
    const { server, logs } = await startTlsServer(t, { services: [whoService(calls)] });
    const error = await rejectsWithStatus(connect(server.url.replace('tls://', 'tcp://')), Status.UNAVAILABLE, 'plain client on a TLS port');
    assert.match(error.message, /^UNAVAILABLE: handshake with tcp:\/\/127\.0\.0\.1:\d+ failed: the peer closed the connection during the handshake without sending a byte: if it is a TLS port, use tls:\/\/$/);
    await until(() => logs.some((l) => l.level === 'warn'), 2_000, 'the server line');
    assert.match(oneWarning(logs), /^TLS handshake with tls:\/\/127\.0\.0\.1:\d+ failed: the peer did not speak TLS \(wrong version number\): a plain tcp:\/\/ client on this TLS port\?$/);
    assert.equal(calls.count, 0);
  });

  void test('T-Z4 a tls:// client on a plain port: connect() says the server does not speak TLS here (FAILED_PRECONDITION); the server says the first bytes are not gridwire', { timeout: TEST_MS }, async (t) => {
    const { server, logs } = await startServer(t, { services: [whoService()] });
    const error = await rejectsWithStatus(connect(server.url.replace('tcp://', 'tls://'), { tls: clientTls() }), Status.FAILED_PRECONDITION, 'TLS client on a plain port');
    assert.match(error.message, /^FAILED_PRECONDITION: dial tls:\/\/127\.0\.0\.1:\d+: the server does not speak TLS here \(wrong version number\): a tcp:\/\/ or ws:\/\/ port\?$/);
    await until(() => logs.some((l) => l.level === 'warn'), 2_000, 'the server line');
    assert.match(oneWarning(logs), /GW_ERR_BAD_HANDSHAKE: the peer's first bytes are not a gridwire HELLO frame \(is it speaking HTTP, TLS or another protocol\?\)/);
  });

  void test('T-Z4 a tls:// client on a ws:// port: FAILED_PRECONDITION, the server does not speak TLS here (a tcp:// or ws:// port?), not "use tcp://"', { timeout: TEST_MS }, async (t) => {
    const { server } = await startServer(t, { services: [whoService()] }, 'ws://127.0.0.1:0/gw');
    const port = /:(\d+)\//.exec(server.url)?.[1];
    const error = await rejectsWithStatus(connect(`tls://127.0.0.1:${port}`, { tls: clientTls() }), Status.FAILED_PRECONDITION, 'TLS client on a ws:// port');
    assert.match(error.message, /the server does not speak TLS here \(.*\): a tcp:\/\/ or ws:\/\/ port\?$/);
  });

  void test('T-Z4 an HTTP request on a TLS port: the server says the peer sent an HTTP request', { timeout: TEST_MS }, async (t) => {
    const { server, logs } = await startTlsServer(t);
    const { createConnection } = await import('node:net');
    const socket = createConnection({ host: '127.0.0.1', port: Number(/:(\d+)$/.exec(server.url)![1]) });
      t.after(() => {
      socket.destroy();
    });
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => logs.some((l) => l.level === 'warn'), 2_000, 'the server line');
    assert.match(oneWarning(logs), /failed: the peer did not speak TLS: it sent an HTTP request/);
  });
});

void describe('certificate rotation', () => {
  void test('server.setSecureContext: a new client sees the new certificate in session.peer.identity; the open session keeps working on the old one', { timeout: TEST_MS }, async (t) => {
    const pki = testPki();
    const { server } = await startTlsServer(t, { services: [whoService()] });
    const old = await connectTo(t, server.url, { tls: clientTls() });
    const oldFingerprint = new X509Certificate(pki.server.cert).fingerprint256;
    assert.equal(old.peer.identity?.fingerprint256, oldFingerprint);

    const rotated = pki.issue({ commonName: 'localhost', dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    server.setSecureContext({ key: rotated.key, cert: rotated.cert, ca: pki.ca });
    const fresh = await connectTo(t, server.url, { tls: clientTls() });
    const newFingerprint = new X509Certificate(rotated.cert).fingerprint256;
    assert.notEqual(newFingerprint, oldFingerprint);
    assert.equal(fresh.peer.identity?.fingerprint256, newFingerprint);
    assert.equal((await fresh.client(Who).whoami(null)).commonName, 'client-1', 'client certificates are still required and checked');

    assert.equal((await old.client(Who).whoami(null)).commonName, 'client-1', 'the open session is untouched');
    assert.equal(old.peer.identity?.fingerprint256, oldFingerprint);
    assert.ok(old.acceptsCalls);

    // the new context's CA list is the one checked from now on: without the cluster CA, client certificates fail
    server.setSecureContext({ key: rotated.key, cert: rotated.cert, ca: pki.rogueCa });
    // (the server hangs up after TLS without an alert: UNAVAILABLE, its log says why)
    const refused = await rejection(connect(server.url, { tls: clientTls() }));
    assert.ok(refused instanceof RpcError && refused.code === Status.UNAVAILABLE && /may have refused our client certificate/.test(refused.message), String(refused));
  });
});

/**
 * A raw TLS client to `url` that sends a HELLO: whether its session was resumed, the session to resume next time (TLS
 * 1.3: a ticket that comes after the handshake), and whether the server answered with its HELLO (it admitted us).
 */
async function tlsVisit(t: TestContext, url: string, tls: ConnectionOptions): Promise<{ reused: boolean; session: Buffer | undefined; received: number }> {
  const socket = tlsConnect({ host: '127.0.0.1', port: Number(/:(\d+)$/.exec(url)?.[1]), servername: 'localhost', ...tls });
  t.after(() => {
    socket.destroy();
  });
  let session: Buffer | undefined;
  let received = 0;
  socket.on('session', (ticket: Buffer) => (session = ticket));
  socket.on('data', (chunk: Buffer) => (received += chunk.length));
  await within(new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject)), 2_000, 'the TLS handshake');
  const reused = socket.isSessionReused();
  socket.write(helloFrame({})); // the server answers a dialer's HELLO with its own
  // a new connection gets tickets; a resumed one none (OpenSSL's default)
  await until(() => received > 0 && (reused || session !== undefined), 2_000, 'the server HELLO (and, unless resumed, a session ticket)');
  socket.destroy();
  return { reused, session, received };
}

void describe('TLS session resumption', () => {
  void test('TLS 1.3 with requestCert: a client that gives the session of its first connection resumes it (isSessionReused) and is admitted; so is connect() with tls.session, its certificate as the peer identity', { timeout: TEST_MS }, async (t) => {
    const accepted: RpcSession[] = [];
    const { server } = await startTlsServer(t, { services: [whoService()], onSession: (s) => accepted.push(s) });
    const first = await tlsVisit(t, server.url, clientTls());
    assert.equal(first.reused, false);
    const second = await tlsVisit(t, server.url, { ...clientTls(), session: first.session });
    assert.ok(second.reused, 'the second connection resumed the first one\'s session');
    assert.ok(second.received > 0, 'the server sent its HELLO over the resumed session');
    const session = await connectTo(t, server.url, { tls: { ...clientTls(), session: first.session } });
    assert.equal((await session.client(Who).whoami(null)).commonName, 'client-1');
    await until(() => accepted.length === 3, 2_000, 'the server sessions: two raw visits and connect()');
    assert.deepEqual(accepted.map((a) => a.peer.identity?.commonName), ['client-1', 'client-1', 'client-1'], 'a resumed session keeps the client certificate');
  });
});

void describe('TLS 1.2 renegotiation', () => {
  void test('a client that asks to renegotiate an admitted TLS 1.2 connection is refused: the server closes the connection', { timeout: TEST_MS }, async (t) => {
    const { server } = await startTlsServer(t, { tls: serverTls({ minVersion: 'TLSv1.2' }), services: [whoService()] });
    const socket = tlsConnect({ host: '127.0.0.1', port: Number(/:(\d+)$/.exec(server.url)?.[1]), servername: 'localhost', ...clientTls(undefined, { maxVersion: 'TLSv1.2' }) });
    t.after(() => {
      socket.destroy();
    });
    let received = 0;
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await within(new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject)), 2_000, 'the TLS 1.2 handshake');
    socket.write(helloFrame({}));
    await until(() => received > 0, 2_000, 'the server HELLO: the connection is admitted');
    let renegotiated = false;
    socket.renegotiate({}, (error) => (renegotiated = error === null)); // not called when the server closes instead
    await within(closed, 3_000, 'the server to close the connection that asked to renegotiate');
    assert.equal(renegotiated, false);
  });
});

void describe('a SocketTransport over a TLSSocket', () => {
  void test('the read budget bounds what one loop turn delivers, pauseReading stops delivery, writableLength shows what waits: as over TCP', { timeout: TEST_MS }, async (t) => {
    const accepted = deferred<Transport>();
    const listener = await listenTls('tls://127.0.0.1:0', (transport) => accepted.resolve(transport), { tls: serverTls({ requestCert: false }), log: () => undefined });
    const dialed = await dialTls(listener.url, { tls: clientTls(null) });
    const server = await within(accepted.promise, 2_000, 'the accepted transport');
    t.after(async () => {
      dialed.destroy();
      server.destroy();
      await listener.close();
    });
    server.setReadBudget!(64 * 1024);
    const total = 8 * MiB;
    const payload = patternedBytes(total);
    const meter = meterTurns(total);
    server.attach(meter.sink);
    dialed.attach({ onData() {}, onEnd() {}, onClose() {}, onDrain() {} });
    dialed.write([payload]);
    await within(meter.done, 8_000, 'all bytes to arrive');
    assert.equal(meter.digest(), createHash('sha256').update(payload).digest('hex'), 'every byte, in order');
    assert.ok(meter.maxTurn <= 256 * 1024, `at most ${meter.maxTurn} bytes delivered in one loop turn`);

    // pauseReading: the server stops reading for good; what the dialer writes then waits on its side
    server.pauseReading!();
    const before = meter.received;
    for (let i = 0; i < 16; i++) dialed.write([Buffer.alloc(MiB)]);
    await sleep(300);
    assert.ok(meter.received - before <= 256 * 1024, `${meter.received - before} bytes delivered after pauseReading`);
    assert.ok(dialed.writableLength! > 4 * MiB, `the dialer holds what the server does not read (writableLength ${dialed.writableLength})`);
  });
});
