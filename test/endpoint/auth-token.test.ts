/**
 * Token authentication in the handshake (the `auth` option, T-Z2): listen({ auth: { token } }) or { auth: { verify } }
 * against connect({ auth: { token } }), over loopback TCP, a memory pair and a raw client writing its HELLO by hand. A
 * dialer without the right token (none, a wrong one, one that is not UTF-8, one a verify() refuses, throws on or
 * never answers) is refused before anything of it is read: connect() rejects UNAUTHENTICATED saying what to do, no
 * handler runs, the server closes the connection and logs one warn line. The token appears in no log line, no error
 * message or cause, and not in session.peer, on either side.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';

import { channel, connect, createMemoryPair, createSession, listen, Mesh, RpcError, Status, statusName, type LinkStateEvent, type SessionPeer } from '../../src/index.js';
import { tokenMatches, withSealedAuth } from '../../src/rpc/auth.js';
import { msgpackCodec } from '../../src/rpc/codec.js';
import { ByteWriter, utf8 } from '../../src/wire/bytes.js';
import { Flag, FrameType, MAX_AUTH_TOKEN_BYTES, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN, Setting } from '../../src/wire/constants.js';
import { ProtocolError, ProtocolErrorCode } from '../../src/wire/errors.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { encodeOpen } from '../../src/wire/payloads.js';
import { decodeHello, encodeHello } from '../../src/wire/hello.js';
import { listenOn } from '../../src/transport/net.js';
import { connectTo, FAST_RECONNECT, goawayOf, oneWarning, rawClient, startServer, unixUrl, type LogLine } from '../fixtures/connections.js';
import { Probe, Svc, svcService } from '../fixtures/mesh-service.js';
import { deferred, helloFrame, RAW_HELLO_SETTINGS, RawPeer, rejectsWithStatus, sleep, until, within } from '../helpers.js';

/** The server's token, and a wrong one: neither may appear in any text the library produces. */
const TOKEN = 'tok-5f0c2d9e-SECRET-a17b44c3e8';
const WRONG = 'tok-00000000-WRONG-ffffffffff';

/** Every text an error carries: its message, its string form, and those of its causes. */
function textsOf(error: unknown): string[] {
  const texts: string[] = [];
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 10; depth++) {
    texts.push(String(e));
    if (e instanceof Error) texts.push(e.message, e.stack ?? '');
    e = e instanceof Error ? e.cause : undefined;
  }
  return texts;
}

/** Neither token appears in any of `texts` (log lines, error texts, peers as JSON). */
function assertNoToken(texts: readonly string[], where: string): void {
  for (const text of texts) {
    for (const token of [TOKEN, WRONG]) assert.ok(!text.includes(token), `${where} contains a token: ${text}`);
  }
}

const logTexts = (logs: readonly LogLine[]): string[] => logs.map((l) => l.message);

/** A HELLO frame whose AUTH_TOKEN holds exactly `token` (any length, any bytes), written by hand. */
function helloWithToken(token: Uint8Array): Uint8Array {
  const base = encodeHello({ versionMin: PROTOCOL_VERSION_MIN, versionMax: PROTOCOL_VERSION_MAX, settings: RAW_HELLO_SETTINGS });
  const setting = new ByteWriter(4 + token.length).u16(Setting.AUTH_TOKEN).u16(token.length).raw(token).done();
  const payload = Buffer.concat([base, setting]);
  payload[12]! += 1; // the setting count, after the magic (8) and the version range (2 + 2)
  return encodeFrame({ type: FrameType.HELLO, flags: 0, streamId: 0, payload });
}

/** Connects with `auth` (if any) and expects UNAUTHENTICATED; returns the error after checking it names auth.token. */
async function refused(url: string, token: string | undefined): Promise<RpcError> {
  const error = await rejectsWithStatus(within(connect(url, token === undefined ? {} : { auth: { token } }), 3000, 'connect'), Status.UNAUTHENTICATED, 'connect()');
  assert.match(error.message, /refused our credentials/);
  assert.match(error.message, /auth\.token/, 'the message says what to set');
  assert.equal(error.retrySafe, false);
  return error;
}

// ---------------------------------------------------------------- auth: { token }

void describe('T-Z2 auth: { token } on both sides', () => {
  void test('T-Z2 the right token: connect() sends it in its HELLO (AUTH_TOKEN), calls are served, the token is in neither side\'s session.peer; a server without auth ignores it', { timeout: 5000 }, async (t) => {
    const probe = new Probe();
    const { server, logs } = await startServer(t, { auth: { token: TOKEN }, services: [svcService('server', probe)] });
    const client = await connectTo(t, server.url, { auth: { token: TOKEN }, nodeName: 'client' });
    assert.equal((await client.client(Svc).whoami('hi')).from, 'client');
    const accepted = [...server.sessions][0]!;
    assertNoToken([JSON.stringify(client.peer), JSON.stringify(accepted.peer), JSON.stringify(probe.contexts[0]!.peer)], 'a peer');
    assert.deepEqual(Object.keys(accepted.peer).sort(), ['address', 'features', 'label', 'nodeName', 'transport']);
    assert.deepEqual(logs, []);

    // what goes on the wire: a listener that records the dialer's HELLO and answers with its own
    const hellos: Uint8Array[] = [];
    const recorder = await listenOn('tcp://127.0.0.1:0', (transport) => {
      const raw = new RawPeer(transport);
      void raw.waitFor((f) => f.type === FrameType.HELLO, 2000, 'HELLO').then((f) => hellos.push(f.payload), () => undefined);
      raw.sendBytes(helloFrame());
      t.after(() => transport.destroy());
    });
    t.after(() => recorder.close());
    const dialed = await connectTo(t, recorder.url, { auth: { token: TOKEN } });
    await until(() => hellos.length === 1, 2000, 'the recorded HELLO');
    assert.equal(Buffer.from(decodeHello(hellos[0]!).settings.authToken ?? []).toString(), TOKEN, 'the HELLO carries the token');
    dialed.destroy();

    const { server: open } = await startServer(t, { services: [svcService('open')] });
    const toOpen = await connectTo(t, open.url, { auth: { token: TOKEN } });
    assert.equal((await toOpen.client(Svc).whoami('hi')).node, 'open', 'a server without auth ignores the token');
  });

  for (const [what, token] of [['no token', undefined], ['a wrong token', WRONG]] as const) {
    void test(`T-Z2 ${what}: connect() rejects UNAUTHENTICATED saying to set auth.token; no handler runs; the server closes the connection and logs one warn line; no token anywhere`, { timeout: 5000 }, async (t) => {
      const probe = new Probe();
      const { server, logs } = await startServer(t, { auth: { token: TOKEN }, services: [svcService('server', probe)] });
      const error = await refused(server.url, token);
      await until(() => logs.length > 0, 2000, 'the server logs the refusal');
      const warning = oneWarning(logs);
      assert.match(warning, /GW_ERR_UNAUTHENTICATED/);
      await until(() => server.sessions.size === 0, 2000, 'the refused connection is closed');
      assert.equal(probe.contexts.length, 0, 'no handler ran');
      assertNoToken([...logTexts(logs), ...textsOf(error)], 'a log line or the error');
    });
  }

  /** A whoami call (OPEN, then its request and the end of the stream), as a raw dialer pipes it after its HELLO. */
  const pipedCall = (): Uint8Array =>
    Buffer.concat([
      encodeFrame({ type: FrameType.OPEN, flags: 0, streamId: 1, payload: encodeOpen(0, 0, utf8('test.mesh.v1/whoami')) }),
      encodeFrame({ type: FrameType.DATA, flags: Flag.MESSAGE_END | Flag.END_STREAM, streamId: 1, payload: msgpackCodec.encode('let me in') }),
    ]);

  for (const [what, hello] of [
    ['no AUTH_TOKEN setting at all', helloFrame()],
    ['an empty AUTH_TOKEN (0 bytes: treated as absent)', helloWithToken(new Uint8Array(0))],
  ] as const) {
    void test(`T-Z2 a raw dialer with ${what}, a call piped right after its HELLO: GOAWAY UNAUTHENTICATED and no HELLO; the call is never served`, { timeout: 5000 }, async (t) => {
      const probe = new Probe();
      const { server, logs } = await startServer(t, { auth: { token: TOKEN }, services: [svcService('server', probe)] });
      const { raw } = await rawClient(t, server.url);
      raw.sendBytes(Buffer.concat([hello, pipedCall()])); // one write: the call arrives with the HELLO
      await within(raw.closed.promise, 3000, 'the server closes the connection');
      assert.deepEqual(raw.frames.map((f) => f.type), [FrameType.GOAWAY], 'a GOAWAY, never a HELLO or an answer');
      const goaway = goawayOf(raw.frames);
      assert.equal(goaway.code, 'UNAUTHENTICATED');
      assert.match(goaway.message, /no auth token was sent.*set auth\.token/);
      await until(() => logs.length > 0, 2000, 'the server logs the refusal');
      assert.match(oneWarning(logs), /GW_ERR_UNAUTHENTICATED/);
      await sleep(20);
      assert.equal(probe.contexts.length, 0, 'no handler ran');
    });
  }

  void test('T-Z2 an over-long token: connect() throws a RangeError before dialing, naming auth.token and not the token; a raw HELLO with 3 000 token bytes is GW_ERR_BAD_HANDSHAKE and verify() never runs', { timeout: 5000 }, async (t) => {
    const long = TOKEN.repeat(Math.ceil((MAX_AUTH_TOKEN_BYTES + 1) / TOKEN.length));
    const error = await connect('tcp://127.0.0.1:1', { auth: { token: long } }).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof RangeError, String(error));
    assert.match(error.message, /auth\.token must be 1 to 2048 UTF-8 bytes/);
    assertNoToken(textsOf(error), 'the RangeError');

    let verified = 0;
    const { server, logs } = await startServer(t, { auth: { verify: () => ++verified > 0 } });
    const { raw } = await rawClient(t, server.url);
    raw.sendBytes(helloWithToken(new Uint8Array(3000).fill(0x41)));
    await within(raw.closed.promise, 3000, 'the server closes the connection');
    assert.equal(goawayOf(raw.frames).code, 'PROTOCOL_ERROR');
    await until(() => logs.length > 0, 2000, 'the server logs it');
    assert.match(oneWarning(logs), /GW_ERR_BAD_HANDSHAKE.*auth token of 3000 bytes is longer than 2048/);
    assert.equal(verified, 0, 'verify() never ran');
  });

  void test('T-Z2 a token that is not UTF-8: refused UNAUTHENTICATED by { token } and by { verify } (which never sees it)', { timeout: 5000 }, async (t) => {
    const notUtf8 = Uint8Array.of(0x74, 0x6f, 0x6b, 0xff, 0xfe, 0xc3, 0x28);
    let verified = 0;
    for (const auth of [{ token: TOKEN }, { verify: () => ++verified > 0 }]) {
      const { server, logs } = await startServer(t, { auth });
      const { raw } = await rawClient(t, server.url);
      raw.sendBytes(helloWithToken(notUtf8));
      await within(raw.closed.promise, 3000, 'the server closes the connection');
      assert.equal(goawayOf(raw.frames).code, 'UNAUTHENTICATED', JSON.stringify(auth));
      await until(() => logs.length > 0, 2000, 'the server logs it');
      assert.match(oneWarning(logs), /GW_ERR_UNAUTHENTICATED/);
    }
    assert.equal(verified, 0, 'verify() never saw bytes that are not UTF-8');
  });
});

// ---------------------------------------------------------------- auth: { verify }

void describe('T-Z2 auth: { verify } on the server', () => {
  void test('T-Z2 an async verify: resolving true admits (it sees the token and the peer), resolving false refuses UNAUTHENTICATED; no handler runs for the refused', { timeout: 5000 }, async (t) => {
    const seen: Array<{ token: string; peer: SessionPeer }> = [];
    const probe = new Probe();
    const verify = async (token: string, peer: SessionPeer): Promise<boolean> => {
      seen.push({ token, peer });
      await new Promise((resolve) => setTimeout(resolve, 20));
      return token === TOKEN;
    };
    const { server, logs } = await startServer(t, { auth: { verify }, services: [svcService('server', probe)] });
    const client = await connectTo(t, server.url, { auth: { token: TOKEN }, nodeName: 'good' });
    assert.equal((await client.client(Svc).whoami('hi')).from, 'good');
    assert.equal(seen[0]!.token, TOKEN);
    assert.equal(seen[0]!.peer.nodeName, 'good');
    assert.match(seen[0]!.peer.address, /^tcp:\/\/127\.0\.0\.1:\d+$/);

    const error = await refused(server.url, WRONG);
    assert.equal(seen[1]!.token, WRONG);
    await until(() => logs.length > 0, 2000, 'the server logs the refusal');
    assert.match(oneWarning(logs), /GW_ERR_UNAUTHENTICATED/);
    assert.equal(probe.count('whoami'), 1, 'only the admitted client was served');
    assertNoToken([...logTexts(logs), ...textsOf(error)], 'a log line or the error');
  });

  // a verify that fails to run (its backend is down) says nothing about the token: the dialer may retry
  for (const [what, verify] of [
    ['throws', (token: string): boolean => { throw new Error(`no such token ${token} in the store`); }],
    ['rejects', (token: string): Promise<boolean> => Promise.reject(new Error(`lookup of ${token} failed`))],
    ['rejects with a coded error', (token: string): Promise<boolean> => Promise.reject(Object.assign(new Error(`store 10.0.0.9:6379 down (asked for ${token})`), { code: 'ECONNREFUSED' }))],
    ['returns a thenable whose then() throws', (token: string): Promise<boolean> => ({ then() { throw new Error(`lookup of ${token} failed`); } }) as unknown as Promise<boolean>],
  ] as const) {
    void test(`T-Z2 a verify that ${what}: connect() rejects UNAVAILABLE retry-safe "could not check credentials" (GOAWAY INTERNAL_ERROR, not UNAUTHENTICATED); the server logs GW_ERR_INTERNAL with the error's name and code only`, { timeout: 5000 }, async (t) => {
      const { server, logs } = await startServer(t, { auth: { verify } });
      const error = await rejectsWithStatus(within(connect(server.url, { auth: { token: WRONG } }), 3000, 'connect'), Status.UNAVAILABLE);
      assert.match(error.message, /INTERNAL_ERROR: the server could not check credentials/);
      assert.equal(error.retrySafe, true, 'nothing was sent: safe to retry');
      assert.doesNotMatch(error.message, /store|lookup|auth\.token/, 'neither the error of verify() nor "your token is bad" is told to the dialer');
      await until(() => logs.length > 0, 2000, 'the server logs the failure');
      const warning = oneWarning(logs);
      const thrown = what === 'rejects with a coded error' ? 'Error \\(ECONNREFUSED\\)' : 'Error';
      assert.match(warning, new RegExp(`GW_ERR_INTERNAL: the server could not check credentials \\(auth\\.verify threw ${thrown}\\)$`), warning);
      assert.doesNotMatch(warning, /store|lookup|10\.0\.0\.9/, 'the message of what verify() threw is not logged: it may hold the token in any encoding');
      assertNoToken([...logTexts(logs), ...textsOf(error)], 'a log line or the error');
    });
  }

  void test('T-Z2 a channel whose server\'s verify() throws: an ordinary failed dial (its backoff grows from initialDelayMs), not the longest wait of a refused token', { timeout: 5000 }, async (t) => {
    const { server } = await startServer(t, { auth: { verify: () => { throw new Error('backend down'); } } });
    const states: LinkStateEvent[] = [];
    const ch = channel(server.url, { auth: { token: TOKEN }, reconnect: { ...FAST_RECONNECT, maxDelayMs: 10_000 }, log: () => undefined });
    t.after(() => ch.close({ graceMs: 0 }));
    ch.on('state', (e) => states.push(e));
    await until(() => states.some((e) => e.state === 'backoff'), 3000, 'a failed dial');
    const backoff = states.find((e) => e.state === 'backoff')!;
    assert.ok(backoff.error instanceof RpcError && backoff.error.code === Status.UNAVAILABLE, String(backoff.error));
    assert.ok(backoff.delayMs! < 5000, `not the longest delay (${backoff.delayMs} ms of at most 10 000)`);
  });

  void test('T-Z2 server.sessions holds a session only once its dialer is admitted (its node name was only claimed before); server.close() still closes one being admitted', { timeout: 5000 }, async (t) => {
    const verdicts: Array<(ok: boolean) => void> = [];
    const { server } = await startServer(t, { auth: { verify: () => new Promise<boolean>((resolve) => verdicts.push(resolve)) } });
    const first = connect(server.url, { auth: { token: TOKEN }, nodeName: 'claimed' });
    await until(() => verdicts.length === 1, 2000, 'verify asked');
    assert.equal(server.sessions.size, 0, 'not while its token is being checked');
    verdicts[0]!(true);
    const session = await within(first, 2000, 'connect');
    t.after(() => session.destroy());
    assert.deepEqual([...server.sessions].map((s) => s.peer.nodeName), ['claimed']);

    const second = connect(server.url, { auth: { token: TOKEN } }).then(() => 'connected', (e: unknown) => (e instanceof RpcError ? statusName(e.code) : String(e)));
    await until(() => verdicts.length === 2, 2000, 'verify asked again');
    assert.equal(server.sessions.size, 1);
    await within(server.close({ graceMs: 0 }), 2000, 'server.close()');
    assert.equal(await within(second, 2000, 'the second connect'), 'UNAVAILABLE', 'closed while being admitted');
    verdicts[1]!(true); // too late: changes nothing
  });

  void test('T-Z2 a verify that never answers: the connection closes with GW_ERR_HANDSHAKE_TIMEOUT after handshakeTimeoutMs; it counts as a pending handshake (maxPendingHandshakes)', { timeout: 8000 }, async (t) => {
    const never = deferred<boolean>();
    t.after(() => never.resolve(true));
    let asked = 0;
    const { server, logs } = await startServer(t, {
      auth: { verify: () => (asked++, never.promise) },
      handshakeTimeoutMs: 300,
      maxPendingHandshakes: 1,
    });
    const start = performance.now();
    const timedOut = rejectsWithStatus(within(connect(server.url, { auth: { token: TOKEN } }), 3000, 'connect'), Status.UNAVAILABLE, 'the first connect');
    await until(() => asked === 1, 2000, 'verify asked about the first');
    // a second one waiting for verify() too: the cap of 1 closes the oldest, the first
    const second = rejectsWithStatus(within(connect(server.url, { auth: { token: TOKEN } }), 3000, 'connect'), Status.UNAVAILABLE, 'the second connect');
    const first = await timedOut;
    assert.doesNotMatch(first.message, /HANDSHAKE_TIMEOUT/, `the first was closed by the cap, not the timeout: ${first.message}`);
    const error = await second;
    const elapsed = performance.now() - start;
    assert.ok(elapsed >= 250 && elapsed < 2000, `the second closed by the handshake timeout after ${elapsed.toFixed(0)} ms`);
    assert.match(error.message, /HANDSHAKE_TIMEOUT/);
    await until(() => logs.some((l) => /GW_ERR_HANDSHAKE_TIMEOUT.*admission check did not answer within 300 ms/.test(l.message)), 2000, 'the timeout logged');
    assert.ok(logs.some((l) => /maxPendingHandshakes/.test(l.message)), `the cap logged: ${JSON.stringify(logs)}`);
    assertNoToken([...logTexts(logs), ...textsOf(first), ...textsOf(error)], 'a log line or an error');
  });
});

// ---------------------------------------------------------------- both sides, in memory

void test('T-Z2 a wrong token over a memory pair: both sides\' ready, closed and error say nothing of either token', { timeout: 5000 }, async (t) => {
  const [a, b] = createMemoryPair();
  const dialer = createSession(a, 'dialer', { auth: { token: WRONG } });
  const acceptor = createSession(b, 'acceptor', { auth: { token: TOKEN } });
  t.after(() => {
    dialer.destroy();
    acceptor.destroy();
  });
  const dialerError = await rejectsWithStatus(within(dialer.ready, 2000, 'dialer ready'), Status.UNAUTHENTICATED);
  const acceptorError = await rejectsWithStatus(within(acceptor.ready, 2000, 'acceptor ready'), Status.UNAUTHENTICATED);
  const closedWith = await within(acceptor.closed, 3000, 'the acceptor closes');
  assert.ok(closedWith instanceof ProtocolError && closedWith.code === ProtocolErrorCode.UNAUTHENTICATED, String(closedWith));
  await within(dialer.closed, 3000, 'the dialer closes');
  assertNoToken(
    [dialerError, acceptorError, closedWith, dialer.error, acceptor.error].flatMap(textsOf).concat(JSON.stringify(dialer.peer), JSON.stringify(acceptor.peer)),
    'an error or a peer',
  );
});

// ---------------------------------------------------------------- channel and mesh

void test('T-Z2 a channel with a wrong token: waits its longest backoff and warns at the first failure (retrying will not mend it)', { timeout: 5000 }, async (t) => {
  const { server } = await startServer(t, { auth: { token: TOKEN } });
  const warnings: string[] = [];
  const states: LinkStateEvent[] = [];
  const ch = channel(server.url, { auth: { token: WRONG }, reconnect: FAST_RECONNECT, log: (level, message) => level === 'warn' && warnings.push(message) });
  t.after(() => ch.close({ graceMs: 0 }));
  ch.on('state', (e) => states.push(e));
  await until(() => warnings.length > 0, 3000, 'a warning');
  assert.match(warnings[0]!, /1 failed connection attempt\(s\) in a row.*refused our credentials/);
  const backoff = states.find((e) => e.state === 'backoff')!;
  assert.ok(backoff.error instanceof RpcError && backoff.error.code === Status.UNAUTHENTICATED, String(backoff.error));
  assert.ok(backoff.delayMs! >= FAST_RECONNECT.maxDelayMs / 2, `the longest delay (${backoff.delayMs} ms)`);
  assertNoToken([...warnings, ...states.flatMap((e) => textsOf(e.error))], 'the channel\'s log or state');
});

void test('T-Z2 a mesh with auth: { token }: nodes with the token call each other; a node with another token is refused UNAUTHENTICATED both ways, never ready', { timeout: 10_000 }, async (t) => {
  const urls = { a: unixUrl(t), b: unixUrl(t), c: unixUrl(t) };
  const logs: Record<string, string[]> = { a: [], b: [], c: [] };
  const node = (name: 'a' | 'b' | 'c', token: string, peers: Record<string, string>): Mesh => {
    const mesh = new Mesh({ name, listen: urls[name], peers, auth: { token }, services: [svcService(name)], reconnect: FAST_RECONNECT, fallbackDialAfterMs: 100, log: (level, message) => logs[name]!.push(`${level} ${message}`) });
    t.after(() => mesh.stop({ graceMs: 0 }));
    return mesh;
  };
  const a = node('a', TOKEN, { b: urls.b, c: urls.c });
  const b = node('b', TOKEN, { a: urls.a });
  const c = node('c', WRONG, { a: urls.a });
  await Promise.all([a.start(), b.start(), c.start()]);
  await within(Promise.all([a.peer('b').whenReady(), b.peer('a').whenReady()]), 4000, 'a and b ready');
  assert.equal((await a.peer('b').client(Svc).whoami('a to b')).node, 'b');
  assert.equal((await b.peer('a').client(Svc).whoami('b to a')).node, 'a');
  await until(() => logs.a!.some((l) => /GW_ERR_UNAUTHENTICATED/.test(l)) && logs.c!.some((l) => /GW_ERR_UNAUTHENTICATED/.test(l)), 4000, 'a and c each refused the other');
  assert.notEqual(a.peer('c').state, 'ready');
  assert.notEqual(c.peer('a').state, 'ready');
  assertNoToken(Object.values(logs).flat(), 'a mesh log');
});

// ---------------------------------------------------------------- the token in memory

/** Every form in which the token could show in a dump: as text, hex (plain and as util.inspect prints a Buffer), base64, and decimal bytes. */
function tokenForms(token: string): string[] {
  const bytes = Buffer.from(token, 'utf8');
  const hex = bytes.toString('hex');
  return [token, hex, hex.match(/../g)!.join(' '), bytes.toString('base64'), bytes.toString('base64url'), Array.from(bytes.subarray(0, 12)).join(', ')];
}

/** Neither util.inspect (every depth, hidden properties, whole arrays) nor JSON.stringify of `value` shows the token. */
function assertNotDumped(value: unknown, where: string): void {
  const dumps = [inspect(value, { depth: Infinity, showHidden: true, maxArrayLength: Infinity, maxStringLength: Infinity }), inspect(value, { depth: Infinity })];
  try {
    dumps.push(JSON.stringify(value) ?? '');
  } catch {
    // a cycle: JSON.stringify of the whole cannot run; its parts are checked where they are reachable below
  }
  for (const dump of dumps) {
    for (const form of tokenForms(TOKEN)) assert.ok(!dump.includes(form), `${where} shows the token (as ${JSON.stringify(form.slice(0, 24))}...)`);
  }
}

void test('T-Z2 the token is not shown by util.inspect(…, { depth: Infinity }) or JSON.stringify of a dialer\'s or an acceptor\'s session, a channel, a mesh or a server, during the handshake or after it', { timeout: 8000 }, async (t) => {
  const verdict = deferred<boolean>();
  const { server } = await startServer(t, { auth: { verify: (token) => (token === TOKEN ? verdict.promise : false) } });
  // during the handshake: the acceptor is still checking the token
  const [a, b] = createMemoryPair();
  const pendingAcceptor = createSession(b, 'acceptor', { auth: { verify: () => verdict.promise } });
  const pendingDialer = createSession(a, 'dialer', { auth: { token: TOKEN } });
  t.after(() => {
    pendingDialer.destroy();
    pendingAcceptor.destroy();
  });
  await sleep(20);
  assertNotDumped(pendingDialer, 'a dialer being admitted');
  assertNotDumped(pendingAcceptor, 'an acceptor admitting');
  const connecting = connect(server.url, { auth: { token: TOKEN } });
  const ch = channel(server.url, { auth: { token: TOKEN }, log: () => undefined });
  t.after(() => ch.close({ graceMs: 0 }));
  const mesh = new Mesh({ name: 'n', peers: { m: server.url }, auth: { token: TOKEN }, log: () => undefined });
  t.after(() => mesh.stop({ graceMs: 0 }));
  await mesh.start();
  await sleep(20);
  assertNotDumped(ch, 'a channel dialing');
  assertNotDumped(mesh, 'a mesh dialing');
  assertNotDumped(server, 'a server admitting');
  verdict.resolve(true);
  const dialer = await within(connecting, 3000, 'connect');
  t.after(() => dialer.destroy());
  await within(ch.whenReady(), 3000, 'channel ready');
  await within(Promise.all([pendingDialer.ready, pendingAcceptor.ready]), 3000, 'memory pair ready');
  for (const [what, value] of [
    ['a connected dialer', dialer],
    ['a dialer over a memory pair', pendingDialer],
    ['an acceptor over a memory pair', pendingAcceptor],
    ['a connected channel', ch],
    ['a mesh', mesh],
    ['a server with sessions', server],
    ['an accepted session', [...server.sessions][0]],
  ] as const) {
    assertNotDumped(value, what);
  }
});

void test('T-Z2 the options a channel or a mesh keeps hold the token sealed: JSON.stringify and util.inspect say <redacted>, the token still reaches the HELLO; other shapes are left for the option check to refuse', () => {
  const sealed = withSealedAuth({ auth: { token: TOKEN }, nodeName: 'x' });
  assert.equal(JSON.stringify(sealed), '{"auth":{"token":"<redacted>"},"nodeName":"x"}');
  assert.equal(inspect(sealed, { depth: Infinity, showHidden: true }), "{ auth: { token: <redacted> }, nodeName: 'x' }");
  assert.equal(sealed.auth && 'token' in sealed.auth ? sealed.auth.token : undefined, TOKEN, 'what reads auth.token still gets it');
  assert.equal(withSealedAuth(sealed), sealed, 'sealed once');
  const verify = { auth: { verify: () => true } };
  assert.equal(withSealedAuth(verify), verify);
  assert.throws(() => new Mesh({ name: 'n', auth: { token: TOKEN, verify: () => true } as never }), /exactly one of auth\.token and auth\.verify/);
  assert.throws(() => channel('tcp://127.0.0.1:1', { auth: { token: 42 } as never }), /auth\.token must be a string/);
});

// ---------------------------------------------------------------- options and the compare

void describe('T-Z2 auth options are checked where they are given, never echoing the token', () => {
  void test('T-Z2 malformed auth options: a TypeError or RangeError naming auth.token or auth.verify', async () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['not an object', TOKEN, /auth must be \{ token \} or \{ verify/],
      ['neither', {}, /exactly one of auth\.token and auth\.verify/],
      ['both', { token: TOKEN, verify: () => true }, /exactly one of auth\.token and auth\.verify/],
      ['a token that is not a string', { token: 42 }, /auth\.token must be a string/],
      ['an empty token', { token: '' }, /auth\.token must be 1 to 2048 UTF-8 bytes, got 0/],
      ['a verify that is not a function', { verify: TOKEN }, /auth\.verify must be a function/],
    ];
    for (const [what, auth, message] of cases) {
      const error = await listen('tcp://127.0.0.1:0', { auth: auth as never }).then(
        async (server) => {
          await server.close();
          return undefined;
        },
        (e: unknown) => e,
      );
      assert.ok(error instanceof TypeError || error instanceof RangeError, `${what}: ${String(error)}`);
      assert.match(error.message, message, what);
      assertNoToken(textsOf(error), what);
    }
  });

  void test('T-Z2 a dialer with auth.verify (connect, channel, Mesh, createSession as dialer): a TypeError saying to give auth.token', async () => {
    const auth = { verify: () => true };
    const expect = /to dial \(connect, channel, Mesh\), give auth\.token/;
    await assert.rejects(connect('tcp://127.0.0.1:1', { auth }), expect);
    assert.throws(() => channel('tcp://127.0.0.1:1', { auth }), expect);
    assert.throws(() => new Mesh({ name: 'n', auth }), expect);
    assert.throws(() => createSession(createMemoryPair()[0], 'dialer', { auth }), expect);
  });

  void test('T-Z2 tokenMatches: SHA-256 digests compared with crypto.timingSafeEqual, so neither a matching prefix nor a length shows in its time', () => {
    const bytes = (text: string): Uint8Array => Buffer.from(text, 'utf8');
    assert.equal(tokenMatches(TOKEN, bytes(TOKEN)), true);
    assert.equal(tokenMatches('naïve-ü-token', bytes('naïve-ü-token')), true, 'compared as UTF-8');
    for (const other of [WRONG, TOKEN.slice(0, -1), `${TOKEN}x`, TOKEN.toUpperCase(), '', `${TOKEN}\0`]) {
      assert.equal(tokenMatches(TOKEN, bytes(other)), false, JSON.stringify(other));
    }
    // the compare takes digests, never the raw bytes: a token of any length reaches timingSafeEqual as 32 bytes
    assert.equal(tokenMatches(TOKEN, new Uint8Array(MAX_AUTH_TOKEN_BYTES)), false);
  });
});

