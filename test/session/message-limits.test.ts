/**
 * Message size limits as a user meets them: raising `maxMessageBytes` on both sides is all a large message needs (the
 * reassembly budget follows it), and a message over a limit fails with an error that names the option to raise.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';

import { createMemoryPair, defineService, serve, unary } from '../../src/index.js';
import { resolveSessionOptions, type SessionOptions } from '../../src/session/options.js';
import { Session } from '../../src/session/session.js';
import type { Stream } from '../../src/session/stream.js';
import { utf8 } from '../../src/wire/bytes.js';
import { Status } from '../../src/wire/constants.js';
import { deferred, testConnTypes, within } from '../helpers.js';

const MiB = 1024 * 1024;

const Blob = defineService('limits.Blob', {
  /** Answers with its request. */
  echo: unary({ codec: 'raw' }),
});

const blobService = serve(Blob, { echo: (request) => request });

// Regression: with maxMessageBytes raised on both sides, a 40 MiB request was refused by a second, undocumented limit
// (maxReassemblyBytes, 32 MiB) with "too many partly received messages".
testConnTypes(
  'a 40 MiB unary echo works once maxMessageBytes is raised on both sides, and nothing else',
  async (env) => {
    const limits = { maxMessageBytes: 64 * MiB };
    const { caller } = await env.open({ services: [blobService], caller: limits, callee: limits });
    const request = new Uint8Array(40 * MiB);
    for (let i = 0; i < request.length; i += 4096) request[i] = i >>> 12;
    const response = await within(caller.client(Blob).echo(request), 20_000, 'the 40 MiB echo');
    assert.equal(response.length, request.length);
    assert.ok(Buffer.from(response).equals(request), 'the echo is the request, byte for byte');
  },
  { kinds: ['memory', 'tcp'], directions: ['forward'], timeout: 30_000 },
);

/** Two core Sessions over a memory pair; the acceptor answers nothing (its streams only receive). */
async function sessionPair(t: TestContext, acceptorOptions: SessionOptions): Promise<Session> {
  const [a, b] = createMemoryPair();
  const dialer = new Session(a, 'dialer', { onStream: () => undefined });
  const acceptor = new Session(b, 'acceptor', { onStream: () => undefined }, acceptorOptions);
  t.after(() => {
    dialer.destroy();
    acceptor.destroy();
  });
  await within(Promise.all([dialer.ready, acceptor.ready]), 1000, 'handshake');
  return dialer;
}

/** How a stream we opened was reset by the peer. */
function resetOf(stream: Stream): Promise<{ status: Status; message: string }> {
  const done = deferred<{ status: Status; message: string }>();
  stream.events = {
    onMessage: () => undefined,
    onEnd: () => done.reject(new Error('the stream ended instead of being reset')),
    onReset: (status, message) => done.resolve({ status, message }),
  };
  return done.promise;
}

void test("T-D8 a message over the receiver's maxMessageBytes is RESOURCE_EXHAUSTED, and the error names maxMessageBytes and says to raise it", { timeout: 5000 }, async (t) => {
  const dialer = await sessionPair(t, { maxMessageBytes: 1024 });
  // the session does not check the peer's limit before sending (the rpc layer does): the receiver's check answers
  for (const size of [4096, 200_000]) {
    const stream = dialer.openStream(utf8('limits/any'));
    const reset = resetOf(stream);
    stream.sendMessage(new Uint8Array(size), true);
    const { status, message } = await within(reset, 2000, `the RESET of a ${size}-byte message`);
    assert.equal(status, Status.RESOURCE_EXHAUSTED);
    assert.match(message, /maxMessageBytes/, `names the option: ${message}`);
    assert.match(message, /1024/, `says the limit: ${message}`);
    assert.match(message, /raise/i, `says what to do: ${message}`);
  }
  assert.equal(dialer.isOpen, true, 'one message over the limit fails its stream, not the connection');
});

void test('partly received messages over maxReassemblyBytes fail that stream with an error that names maxReassemblyBytes', { timeout: 5000 }, async (t) => {
  const dialer = await sessionPair(t, { maxMessageBytes: 8 * MiB, maxReassemblyBytes: 100_000 });
  const stream = dialer.openStream(utf8('limits/any'));
  const reset = resetOf(stream);
  stream.sendMessage(new Uint8Array(1 * MiB), true); // sent in frames of at most 64 KiB: reassembled by the receiver
  const { status, message } = await within(reset, 2000, 'the RESET of the 1 MiB message');
  assert.equal(status, Status.RESOURCE_EXHAUSTED);
  assert.match(message, /maxReassemblyBytes/, `names the option: ${message}`);
  assert.equal(dialer.isOpen, true);
});

void test('the reassembly budget follows maxMessageBytes unless set: twice what holding one costs, at least 32 MiB', () => {
  assert.equal(resolveSessionOptions({}).maxReassemblyBytes, 32 * MiB, 'the default, with 4 MiB messages');
  // each message: its bytes, one block's unused end (64 KiB), 128 bytes for each of its 1 024 + 8 blocks
  assert.equal(resolveSessionOptions({ maxMessageBytes: 64 * MiB }).maxReassemblyBytes, 2 * (64 * MiB + 64 * 1024 + 128 * 1032));
  assert.equal(resolveSessionOptions({ maxMessageBytes: 64 * MiB, maxReassemblyBytes: 70 * MiB }).maxReassemblyBytes, 70 * MiB, 'an explicit value wins');
});
