/**
 * The transport matrix: the same sessions and calls over every entry of test/fixtures/transports.ts (in-memory, TCP on
 * IPv4 and IPv6 loopback, Unix; TLS and WebSocket join as entries there), one describe per transport: unary both ways
 * on one connection, the three message streams, an upload and a download with their sha256, a handler's error,
 * cancellation and deadlines reaching the handler, 64 calls at once, a message of exactly maxMessageBytes, ping, a
 * graceful close that drains, a connection cut under a download (an error, never a clean end), and what each side
 * knows of its peer. Sizes are small: one transport's describe takes about a second.
 *
 * The deep suites (test/rpc, test/session) run their own memory/TCP/Unix matrix through testConnTypes; this file is
 * the one every transport must pass before it ships.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  bidi,
  clientStream,
  defineService,
  RpcError,
  serve,
  serverStream,
  Status,
  unary,
  type CallContext,
  type RpcSession,
  type ServiceImpl,
} from '../../src/index.js';
import { Bulk, CHUNK_BYTES, KiB, MiB, patternChunk, patternChunks, patternSha256, Tally, type GetRequest } from '../fixtures/bulk.js';
import { cutUnderneath, openPair, TRANSPORTS, type MatrixTransport } from '../fixtures/transports.js';
import { assertStatus, deferred, rejectsWithStatus, until, within } from '../helpers.js';

// ---------------------------------------------------------------- services

interface PeerFacts {
  transport: string;
  address: string;
  nodeName: string;
  label: string;
}

const Calls = defineService('test.matrix.Calls', {
  echo: unary<unknown, unknown>(),
  /** What the handler's ctx.peer says. */
  peer: unary<null, PeerFacts>(),
  /** Calls the caller back (test.matrix.Back/hello) while this call is in flight. */
  callBack: unary<string, string>(),
  /** Throws RpcError(code, message), or a plain Error(message) without a code. */
  fail: unary<{ code?: number; message: string }, null>(),
  /** Never answers: waits for its signal. */
  hang: unary<null, never>(),
  /** Waits until the test opens the gate. */
  gated: unary<string, string>(),
  /** Answers with as many bytes as the u32 at the start of its request says. */
  sized: unary({ codec: 'raw' }),
  count: serverStream<number, number>(),
  sum: clientStream<number, number>(),
  shout: bidi<string, string>(),
});

const Back = defineService('test.matrix.Back', {
  hello: unary<string, string>(),
});

/** What the Calls handlers let a test see. */
class Probe {
  readonly gate = deferred();
  started = 0;
  readonly aborted = deferred<{ reason: unknown; deadline: number | undefined }>();
}

function callsService(probe = new Probe()): ServiceImpl {
  return serve(Calls, {
    echo: (value) => value,
    peer: (_req, ctx) => ({ transport: ctx.peer.transport, address: ctx.peer.address, nodeName: ctx.peer.nodeName, label: ctx.peer.label }),
    callBack: async (name, ctx) => `heard ${await ctx.session.client(Back).hello(`${name}?`)}`,
    fail: ({ code, message }) => {
      throw code === undefined ? new Error(message) : new RpcError(code as Status, message);
    },
    hang: (_req, ctx: CallContext) => {
      probe.started++;
      return new Promise<never>((_, reject) =>
        ctx.signal.addEventListener('abort', () => {
          probe.aborted.resolve({ reason: ctx.signal.reason, deadline: ctx.deadline });
          reject(ctx.signal.reason as Error);
        }),
      );
    },
    gated: async (text) => {
      probe.started++;
      await probe.gate.promise;
      return `done ${text}`;
    },
    sized: (request) => new Uint8Array(Buffer.from(request.buffer, request.byteOffset, request.byteLength).readUInt32BE(0)),
    *count(n) {
      for (let i = 0; i < n; i++) yield i;
    },
    async sum(numbers) {
      let total = 0;
      for await (const n of numbers) total += n;
      return total;
    },
    async *shout(lines) {
      for await (const line of lines) yield line.toUpperCase();
    },
  });
}

const backService = serve(Back, { hello: (text) => `hello ${text}` });

/** A download body that never ends; `stopped` resolves when its `finally` runs. */
class Endless {
  readonly stopped = deferred();

  async *chunks(): AsyncGenerator<Uint8Array> {
    try {
      for (let i = 0; ; i++) yield patternChunk(i, CHUNK_BYTES);
    } finally {
      this.stopped.resolve();
    }
  }
}

/** put tallies its body; get sends `bytes` of the pattern, or never ends (kind 'endless'). */
function bulkService(endless = new Endless()): ServiceImpl {
  return serve(Bulk, {
    async put(req, body) {
      const tally = new Tally();
      for await (const chunk of body) tally.add(chunk);
      return { name: req.name, bytes: tally.bytes, chunks: tally.chunks, sha256: tally.sha256 };
    },
    get: (req: GetRequest) => (req.kind === 'endless' ? endless.chunks() : patternChunks(req.bytes)),
    echo: (s) => s,
  });
}

// ---------------------------------------------------------------- reading helpers

async function readAll<T>(stream: AsyncIterable<T>, what: string): Promise<T[]> {
  const items: T[] = [];
  await within(
    (async () => {
      for await (const item of stream) items.push(item);
    })(),
    5000,
    what,
  );
  return items;
}

/** Reads a byte stream; the error it threw instead of ending, if any. */
async function drain(stream: AsyncIterable<Uint8Array>, onChunk?: (tally: Tally) => void): Promise<{ tally: Tally; error: unknown; ended: boolean }> {
  const tally = new Tally();
  try {
    for await (const chunk of stream) {
      tally.add(chunk);
      onChunk?.(tally);
    }
    return { tally, error: undefined, ended: true };
  } catch (error) {
    return { tally, error, ended: false };
  }
}

const sizedRequest = (bytes: number): Uint8Array => {
  const request = Buffer.alloc(4);
  request.writeUInt32BE(bytes, 0);
  return request;
};

const identityOf = (session: RpcSession): unknown => (session.peer as { identity?: unknown }).identity;

function assertNoWarnings(logs: ReadonlyArray<{ level: string; message: string }>): void {
  assert.deepEqual(
    logs.filter((l) => l.level === 'warn'),
    [],
    'the server logged no warning',
  );
}

// ---------------------------------------------------------------- the matrix

/** Per test; a transport's whole describe takes about a second on a quiet machine. */
const TIMEOUT_MS = 10_000;
const BULK_BYTES = 3 * MiB + 12_345; // not a multiple of a chunk or frame: the last frame is a short one
const MAX_MESSAGE_BYTES = 256 * KiB;

function matrix(transport: MatrixTransport): void {
  void test('unary both directions on one connection: the dialer calls the acceptor while the acceptor calls the dialer, and a handler calls its caller back', { timeout: TIMEOUT_MS }, async (t) => {
    const { dialer, acceptor, server } = await openPair(t, transport, { acceptor: { services: [callsService()] }, dialer: { services: [backService] } });
    const forward = dialer.client(Calls);
    const backward = acceptor.client(Back);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => [forward.echo({ i, text: `n${i}` }), backward.hello(`n${i}`)]).flat());
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(results[2 * i], { i, text: `n${i}` });
      assert.equal(results[2 * i + 1], `hello n${i}`);
    }
    assert.deepEqual(await Promise.all([forward.callBack('a'), forward.echo('plain'), forward.callBack('b')]), ['heard hello a?', 'plain', 'heard hello b?']);
    assertNoWarnings(server.logs);
  });

  void test('server stream, client stream and bidi', { timeout: TIMEOUT_MS }, async (t) => {
    const { dialer } = await openPair(t, transport, { acceptor: { services: [callsService()] } });
    const calls = dialer.client(Calls);
    assert.deepEqual(await readAll(calls.count(5), 'server stream'), [0, 1, 2, 3, 4]);
    assert.deepEqual(await readAll(calls.count(0), 'empty server stream'), []);
    assert.equal(await calls.sum([1, 2, 3, 4]), 10);
    const chat = calls.shout();
    await chat.send('a');
    assert.deepEqual(await within(chat.next(), 2000, 'the first reply'), { done: false, value: 'A' });
    await chat.send('b');
    chat.end();
    assert.deepEqual(await readAll(chat, 'the rest of the bidi'), ['B']);
  });

  void test(`an upload and a download of ${BULK_BYTES} bytes at once arrive whole: the same sha256 on both ends`, { timeout: TIMEOUT_MS }, async (t) => {
    const { dialer } = await openPair(t, transport, { acceptor: { services: [bulkService()] } });
    const files = dialer.client(Bulk);
    const expected = patternSha256(BULK_BYTES);
    const [up, down] = await within(Promise.all([files.put({ name: 'up' }, patternChunks(BULK_BYTES)), drain(files.get({ bytes: BULK_BYTES }))]), 8000, 'the transfers');
    assert.equal(up.bytes, BULK_BYTES, 'upload: bytes the handler got');
    assert.equal(up.sha256, expected, 'upload: sha256');
    assert.equal(down.ended, true, `the download ended cleanly (${String(down.error)})`);
    assert.equal(down.tally.bytes, BULK_BYTES, 'download: bytes');
    assert.equal(down.tally.sha256, expected, 'download: sha256');
  });

  void test("a handler's error reaches the caller with its status and message; the connection stays usable", { timeout: TIMEOUT_MS }, async (t) => {
    const { dialer } = await openPair(t, transport, { acceptor: { services: [callsService()] } });
    const calls = dialer.client(Calls);
    const typed = await rejectsWithStatus(calls.fail({ code: Status.FAILED_PRECONDITION, message: 'disk "d1" is read-only' }), Status.FAILED_PRECONDITION);
    assert.equal(typed.rawMessage, 'disk "d1" is read-only');
    const plain = await rejectsWithStatus(calls.fail({ message: 'boom' }), Status.UNKNOWN);
    assert.equal(plain.rawMessage, 'boom');
    assert.equal(await calls.echo('after'), 'after');
  });

  void test("aborting the caller's AbortSignal: the call rejects CANCELLED and the handler's ctx.signal aborts CANCELLED", { timeout: TIMEOUT_MS }, async (t) => {
    const probe = new Probe();
    const { dialer } = await openPair(t, transport, { acceptor: { services: [callsService(probe)] } });
    const controller = new AbortController();
    const call = dialer.client(Calls).hang(null, { signal: controller.signal });
    await until(() => probe.started === 1, 2000, 'the handler started');
    controller.abort();
    await rejectsWithStatus(call, Status.CANCELLED);
    const { reason } = await within(probe.aborted.promise, 2000, "the handler's signal");
    assertStatus(reason, Status.CANCELLED, "the handler's signal reason");
    assert.equal(await dialer.client(Calls).echo('after'), 'after');
  });

  void test('a deadline travels: the caller gets DEADLINE_EXCEEDED, the handler sees ctx.deadline and its signal aborts DEADLINE_EXCEEDED', { timeout: TIMEOUT_MS }, async (t) => {
    const probe = new Probe();
    const { dialer } = await openPair(t, transport, { acceptor: { services: [callsService(probe)] } });
    const startDate = Date.now();
    await rejectsWithStatus(dialer.client(Calls).hang(null, { timeoutMs: 150 }), Status.DEADLINE_EXCEEDED);
    const { reason, deadline } = await within(probe.aborted.promise, 2000, "the handler's signal");
    assertStatus(reason, Status.DEADLINE_EXCEEDED, "the handler's signal reason");
    assert.ok(deadline !== undefined, 'ctx.deadline is set');
    // the handler counts the time left from receipt: not before the caller's own deadline, and not far after it
    assert.ok(deadline >= startDate + 149 && deadline <= startDate + 1150, `ctx.deadline ${deadline - startDate} ms after the call started`);
  });

  void test('64 concurrent unary calls all succeed', { timeout: TIMEOUT_MS }, async (t) => {
    const { dialer } = await openPair(t, transport, { acceptor: { services: [callsService()] } });
    const echo = dialer.client(Calls).echo;
    const results = await within(Promise.all(Array.from({ length: 64 }, (_, i) => echo({ i }))), 5000, '64 calls');
    results.forEach((r, i) => assert.deepEqual(r, { i }));
  });

  void test(`a message of exactly maxMessageBytes (${MAX_MESSAGE_BYTES}) goes both ways; one byte more is RESOURCE_EXHAUSTED on either side and the connection stays usable`, { timeout: TIMEOUT_MS }, async (t) => {
    const limits = { services: [callsService()], maxMessageBytes: MAX_MESSAGE_BYTES };
    const { dialer } = await openPair(t, transport, { acceptor: limits, dialer: limits });
    const sized = dialer.client(Calls).sized;
    const request = new Uint8Array(MAX_MESSAGE_BYTES);
    request.set(sizedRequest(MAX_MESSAGE_BYTES));
    assert.equal((await sized(request)).byteLength, MAX_MESSAGE_BYTES, 'a response of exactly the limit');
    const tooBig = new Uint8Array(MAX_MESSAGE_BYTES + 1);
    tooBig.set(sizedRequest(4));
    const refused = await rejectsWithStatus(sized(tooBig), Status.RESOURCE_EXHAUSTED, 'a request one byte over');
    assert.match(refused.message, /maxMessageBytes/);
    const answered = await rejectsWithStatus(sized(sizedRequest(MAX_MESSAGE_BYTES + 1)), Status.RESOURCE_EXHAUSTED, 'a response one byte over');
    assert.match(answered.message, /maxMessageBytes/);
    assert.equal(await dialer.client(Calls).echo('after'), 'after');
  });

  void test('session.ping() measures a round trip from either side', { timeout: TIMEOUT_MS }, async (t) => {
    const { dialer, acceptor } = await openPair(t, transport);
    for (const session of [dialer, acceptor]) {
      const rtt = await within(session.ping(), 2000, `${session.role} ping`);
      assert.ok(Number.isFinite(rtt) && rtt >= 0, `${session.role} rtt ${rtt}`);
      assert.equal(session.rttMs, rtt);
    }
  });

  void test("graceful close() by the acceptor: calls in flight both ways finish, new ones are UNAVAILABLE, both sides close cleanly", { timeout: TIMEOUT_MS }, async (t) => {
    const probe = new Probe();
    const service = callsService(probe);
    const { dialer, acceptor } = await openPair(t, transport, { acceptor: { services: [service] }, dialer: { services: [service] } });
    const forward = dialer.client(Calls).gated('forward');
    const backward = acceptor.client(Calls).gated('backward');
    await until(() => probe.started === 2, 2000, 'both calls are with their handlers');
    const closed = acceptor.close({ graceMs: 5000 });
    await rejectsWithStatus(dialer.client(Calls).echo('late'), Status.UNAVAILABLE, 'a call after the GOAWAY');
    probe.gate.resolve();
    assert.equal(await within(forward, 2000, 'the forward call'), 'done forward');
    assert.equal(await within(backward, 2000, 'the backward call'), 'done backward');
    await within(closed, 3000, 'close()');
    assert.equal(await within(dialer.closed, 3000, 'the dialer closed'), undefined);
    assert.equal(await within(acceptor.closed, 3000, 'the acceptor closed'), undefined);
  });

  void test("the connection cut under a download (the server's transport destroyed): the reader throws UNAVAILABLE, never a clean end; the handler's generator stops", { timeout: TIMEOUT_MS }, async (t) => {
    const endless = new Endless();
    const { dialer, acceptor } = await openPair(t, transport, { acceptor: { services: [bulkService(endless)] } });
    let cut = false;
    const result = await within(
      drain(dialer.client(Bulk).get({ bytes: 0, kind: 'endless' }), (tally) => {
        if (tally.bytes >= 512 * KiB && !cut) {
          cut = true;
          cutUnderneath(acceptor);
        }
      }),
      5000,
      'the download',
    );
    assert.ok(cut, 'the cut happened');
    assert.equal(result.ended, false, 'never a clean end');
    assertStatus(result.error, Status.UNAVAILABLE, 'the download');
    assert.equal(result.tally.sha256, patternSha256(result.tally.bytes), 'what came is a prefix of what was sent');
    await within(endless.stopped.promise, 2000, "the handler's generator's finally");
    await within(Promise.all([dialer.closed, acceptor.closed]), 3000, 'both sides closed');
    await rejectsWithStatus(dialer.client(Bulk).echo('after'), Status.UNAVAILABLE, 'a call after the cut');
  });

  void test("peer facts: transport, address, node name and label on both sides and in a handler's ctx.peer", { timeout: TIMEOUT_MS }, async (t) => {
    const { dialer, acceptor, server } = await openPair(t, transport, {
      acceptor: { services: [callsService()], nodeName: 'server-node' },
      dialer: { services: [callsService()], nodeName: 'client-node', label: 'control' },
    });
    assert.equal(dialer.role, 'dialer');
    assert.equal(acceptor.role, 'acceptor');
    for (const [session, other] of [
      [dialer, 'server-node'],
      [acceptor, 'client-node'],
    ] as const) {
      assert.equal(session.peer.transport, transport.peerTransport, `${session.role}: peer.transport`);
      assert.match(session.peer.address, transport.peerAddress, `${session.role}: peer.address`);
      assert.equal(session.peer.nodeName, other, `${session.role}: peer.nodeName`);
    }
    assert.equal(acceptor.peer.label, 'control');
    assert.equal(dialer.peer.label, '');
    const seenByAcceptor = await dialer.client(Calls).peer(null);
    assert.deepEqual(seenByAcceptor, { transport: acceptor.peer.transport, address: acceptor.peer.address, nodeName: 'client-node', label: 'control' });
    const seenByDialer = await acceptor.client(Calls).peer(null);
    assert.deepEqual(seenByDialer, { transport: dialer.peer.transport, address: dialer.peer.address, nodeName: 'server-node', label: '' });
    if (transport.checkPeers) transport.checkPeers({ dialer, acceptor });
    else {
      assert.equal(identityOf(dialer), undefined, 'no certificate, no identity (dialer)');
      assert.equal(identityOf(acceptor), undefined, 'no certificate, no identity (acceptor)');
    }
    assertNoWarnings(server.logs);
  });
}

const skips = await Promise.all(TRANSPORTS.map((transport) => transport.skip?.()));
for (const [i, transport] of TRANSPORTS.entries()) {
  void describe(`matrix: ${transport.name}`, { skip: skips[i] ?? false }, () => matrix(transport));
}
