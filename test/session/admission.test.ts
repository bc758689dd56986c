/**
 * The admission step of the handshake (handshake.ts), beyond tokens (test/endpoint/auth-token.test.ts) and the
 * pre-auth surface (protocol-errors.test.ts): an admission check that throws, rejects or answers with a thenable whose
 * then() throws fails the handshake UNAVAILABLE (GOAWAY INTERNAL_ERROR, retry-safe for the dialer: the check could not
 * run), one that closes the session itself sends no HELLO after its GOAWAY, and a dialer's check that answers with a
 * rejecting promise leaves no unhandled rejection. A dialer's ping() during an async admission waits for the
 * acceptor's HELLO; an acceptor's GOAWAY VERSION_MISMATCH instead of its HELLO reaches connect() as
 * FAILED_PRECONDITION.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';

import { connect, createMemoryPair, createSession, RpcError, Status, type RpcSession } from '../../src/index.js';
import { Handshake } from '../../src/session/handshake.js';
import { resolveSessionOptions } from '../../src/session/options.js';
import { listenOn } from '../../src/transport/net.js';
import { ConnectionCode, FrameType, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN } from '../../src/wire/constants.js';
import { encodeHello } from '../../src/wire/hello.js';
import { ProtocolError, ProtocolErrorCode } from '../../src/wire/errors.js';
import { decodeGoaway, encodeGoaway } from '../../src/wire/payloads.js';
import { tapFrames } from '../fixtures/sessions.js';
import { deferred, helloFrame, RAW_HELLO_SETTINGS, RawPeer, rejectsWithStatus, sleep, within } from '../helpers.js';

const helloPayload = (): Uint8Array => encodeHello({ versionMin: PROTOCOL_VERSION_MIN, versionMax: PROTOCOL_VERSION_MAX, settings: RAW_HELLO_SETTINGS });

/** An acceptor session with `admit`, facing a raw dialer that sent its HELLO; `written` is every frame it sends. */
function acceptorWith(t: TestContext, admit: () => unknown): { session: RpcSession; raw: RawPeer; written: ReturnType<typeof tapFrames> } {
  const [rawEnd, sessionEnd] = createMemoryPair();
  const written = tapFrames(sessionEnd);
  const session = createSession(sessionEnd, 'acceptor', { admit: admit as never, log: () => undefined });
  t.after(() => session.destroy());
  const raw = new RawPeer(rawEnd);
  raw.sendBytes(helloFrame());
  return { session, raw, written };
}

void describe('the admission check fails to run: UNAVAILABLE, GOAWAY INTERNAL_ERROR, never a HELLO', () => {
  for (const [what, admit] of [
    ['throws', (): string => { throw new Error('the member list is not loaded'); }],
    ['rejects', (): Promise<string> => Promise.reject(new Error('the member list is not loaded'))],
    ['returns a thenable whose then() throws', () => ({ then() { throw new Error('the member list is not loaded'); } })],
    ['returns an object whose then getter throws', () => ({ get then() { throw new Error('the member list is not loaded'); } })],
  ] as const) {
    void test(`an acceptor's admit that ${what}: its ready rejects UNAVAILABLE, the dialer gets GOAWAY INTERNAL_ERROR "the admission check failed" and no HELLO`, { timeout: 5000 }, async (t) => {
      const { session, raw, written } = acceptorWith(t, admit);
      const error = await rejectsWithStatus(within(session.ready, 2000, 'ready'), Status.UNAVAILABLE, 'the acceptor\'s ready');
      assert.match(error.message, /GW_ERR_INTERNAL: the admission check failed \(it threw Error: the member list is not loaded\)/);
      const closedWith = await within(session.closed, 3000, 'closed');
      assert.ok(closedWith instanceof ProtocolError && closedWith.code === ProtocolErrorCode.INTERNAL, String(closedWith));
      await within(raw.ended.promise, 3000, 'the raw dialer sees the end');
      assert.deepEqual(written.map((f) => f.type), [FrameType.GOAWAY], 'a GOAWAY and nothing else');
      const goaway = decodeGoaway(written[0]!.payload);
      assert.equal(goaway.code, ConnectionCode.INTERNAL_ERROR);
      assert.equal(goaway.message, 'the admission check failed', 'what was thrown stays in our log');
    });
  }

  void test('a dialer told GOAWAY INTERNAL_ERROR instead of a HELLO: ready rejects UNAVAILABLE, retry-safe (nothing was sent)', { timeout: 5000 }, async (t) => {
    const [rawEnd, sessionEnd] = createMemoryPair();
    const dialer = createSession(sessionEnd, 'dialer', {});
    t.after(() => dialer.destroy());
    const raw = new RawPeer(rawEnd);
    await raw.waitFor((f) => f.type === FrameType.HELLO, 1000, "the dialer's HELLO");
    raw.send(FrameType.GOAWAY, 0, 0, encodeGoaway(0, ConnectionCode.INTERNAL_ERROR, 'the server could not check credentials'));
    const error = await rejectsWithStatus(within(dialer.ready, 2000, 'ready'), Status.UNAVAILABLE);
    assert.equal(error.retrySafe, true);
    assert.match(error.message, /INTERNAL_ERROR: the server could not check credentials/);
  });
});

void describe('the admission check and the session\'s own state', () => {
  void test('an admit that closes the session itself, then admits: the GOAWAY is the last frame, no HELLO follows it', { timeout: 5000 }, async (t) => {
    const self: { session?: RpcSession } = {};
    const { raw, written, session: s } = acceptorWith(t, () => {
      void self.session!.close();
      return undefined;
    });
    self.session = s;
    await within(s.closed, 3000, 'closed');
    await within(raw.ended.promise, 3000, 'the raw dialer sees the end');
    await sleep(20);
    assert.deepEqual(written.map((f) => f.type), [FrameType.GOAWAY], `frames sent: ${written.map((f) => f.type).join(', ')}`);
    await rejectsWithStatus(s.ready, Status.UNAVAILABLE);
  });

  void test('handshake.ts: a check that fails the handshake itself (the session closed) and then admits queues no HELLO', () => {
    const queued: number[] = [];
    const peer = { address: 'memory://x', transport: 'memory' } as const;
    const failures: Error[] = [];
    const handshake = new Handshake({ ...resolveSessionOptions({ handshakeTimeoutMs: 0 }) }, peer, 'acceptor', { queueFrame: (type) => void queued.push(type) }, undefined, (e) => void failures.push(e));
    handshake.receive(helloPayload());
    const outcomes: Array<Error | undefined> = [];
    handshake.admit(() => {
      handshake.fail(new Error('the session closed while its admission ran'));
      return undefined;
    }, (error) => void outcomes.push(error));
    assert.deepEqual(queued, [], 'no HELLO queued after the handshake failed');
    assert.deepEqual(outcomes, [undefined]);
    assert.deepEqual(failures, []);
  });

  void test('a dialer\'s admit that answers with a rejecting promise: refused at once (a dialer\'s must answer at once), no unhandled rejection', { timeout: 5000 }, async (t) => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    t.after(() => process.off('unhandledRejection', onUnhandled));
    const [a, b] = createMemoryPair();
    const acceptor = createSession(b, 'acceptor', {});
    const dialer = createSession(a, 'dialer', { admit: (() => Promise.reject(new Error('async no'))) as never });
    t.after(() => {
      dialer.destroy();
      acceptor.destroy();
    });
    const error = await rejectsWithStatus(within(dialer.ready, 2000, 'dialer ready'), Status.UNAVAILABLE);
    assert.match(error.message, /must answer at once, not with a promise/);
    await within(acceptor.ready.catch(() => undefined), 2000, 'acceptor ready settles');
    await sleep(50); // unhandled rejections are reported after the microtask queue drains
    assert.deepEqual(unhandled.map(String), []);
  });
});

void describe('what a dialer may do while it is being admitted', () => {
  void test('a dialer\'s ping() during an async admission waits for the acceptor\'s HELLO: the connection survives and the ping is answered', { timeout: 5000 }, async (t) => {
    const [a, b] = createMemoryPair();
    const verdict = deferred<boolean>();
    const acceptor = createSession(b, 'acceptor', { auth: { verify: () => verdict.promise } });
    const dialer = createSession(a, 'dialer', { auth: { token: 'ping-while-admitted' } });
    t.after(() => {
      dialer.destroy();
      acceptor.destroy();
    });
    const ping = dialer.ping();
    await sleep(50); // a PING written now would be refused: only GOAWAY may come before our HELLO
    verdict.resolve(true);
    await within(Promise.all([dialer.ready, acceptor.ready]), 2000, 'both ready');
    const rtt = await within(ping, 2000, 'the ping');
    assert.ok(rtt >= 0);
    assert.equal(acceptor.error, undefined);
    assert.equal(dialer.error, undefined);
  });
});

void describe('an acceptor that refuses instead of answering', () => {
  void test('T-Z4 connect() to an acceptor that sends GOAWAY VERSION_MISMATCH instead of its HELLO rejects FAILED_PRECONDITION with its reason', { timeout: 5000 }, async (t) => {
    const listener = await listenOn('tcp://127.0.0.1:0', (transport) => {
      const raw = new RawPeer(transport);
      t.after(() => transport.destroy());
      void raw.waitFor((f) => f.type === FrameType.HELLO, 2000, 'HELLO').then(
        () => raw.send(FrameType.GOAWAY, 0, 0, encodeGoaway(0, ConnectionCode.VERSION_MISMATCH, 'GW_ERR_VERSION_MISMATCH: ours 2..2, theirs 1..1')),
        () => undefined,
      );
    });
    t.after(() => listener.close());
    const error = await within(connect(listener.url).then(() => undefined, (e: unknown) => e), 3000, 'connect');
    assert.ok(error instanceof RpcError, String(error));
    assert.equal(error.code, Status.FAILED_PRECONDITION, error.message);
    assert.match(error.message, /VERSION_MISMATCH: .*ours 2\.\.2, theirs 1\.\.1/);
  });
});
