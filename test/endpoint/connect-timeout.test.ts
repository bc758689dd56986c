/**
 * `connect(url, { connectTimeoutMs })` bounds the dial and the handshake together: a server that accepts the TCP
 * connection and never sends HELLO used to hold `connect` for the whole handshakeTimeoutMs (10 s by default).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { channel, connect, defineService, listen, Mesh, RpcError, serve, Status, unary } from '../../src/index.js';
import { sleep, within } from '../helpers.js';

/** A TCP server that accepts every connection and never writes a byte; reports when each socket is closed. */
async function silentServer(t: TestContext): Promise<{ url: string; accepted: Promise<Socket>; closed: Promise<void> }> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    socket.resume(); // read (and drop) the HELLO so it cannot fill a buffer
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  const accepted = once(server, 'connection').then(([socket]) => socket as Socket);
  const closed = accepted.then((socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())));
  const { port } = server.address() as { port: number };
  return { url: `tcp://127.0.0.1:${port}`, accepted, closed };
}

void test('connect to a server that accepts and never sends HELLO rejects UNAVAILABLE within connectTimeoutMs, naming it, and closes the socket', { timeout: 10_000 }, async (t) => {
  const server = await silentServer(t);
  const started = performance.now();
  const attempt = connect(server.url, { connectTimeoutMs: 300 });
  attempt.catch(() => undefined); // awaited below; a rejection before that is not unhandled
  await within(server.accepted, 2_000, 'the server to accept the dial');
  const error = await within(
    attempt.then(
      () => assert.fail('connect resolved against a server that never answers'),
      (error: unknown) => error,
    ),
    1_000,
    'connect with connectTimeoutMs 300 to settle',
  );
  const tookMs = performance.now() - started;
  assert.ok(error instanceof RpcError, `an RpcError, got ${String(error)}`);
  assert.equal(error.code, Status.UNAVAILABLE);
  assert.match(error.message, /connectTimeoutMs \(300 ms\)/);
  assert.match(error.message, /handshake/);
  assert.equal(error.retrySafe, true, 'no call was sent: retrying is safe');
  assert.ok(tookMs >= 250, `rejected after ${tookMs.toFixed(0)} ms: not before the timeout`);
  await within(server.closed, 1_000, 'the server to see the socket closed');
});

void test('a connect that completes within connectTimeoutMs is not cut when the timeout would have passed', { timeout: 10_000 }, async (t) => {
  const Echo = defineService('echo.v1', { echo: unary<string, string>() });
  const server = await listen('tcp://127.0.0.1:0', { services: [serve(Echo, { echo: (s) => s })] });
  t.after(() => server.close({ graceMs: 0 }));
  const session = await connect(server.url, { connectTimeoutMs: 200 });
  t.after(() => session.close({ graceMs: 0 }));
  await sleep(400);
  assert.equal(session.acceptsCalls, true, 'the session is still open after connectTimeoutMs');
  assert.equal(await session.client(Echo).echo('still here'), 'still here');
});

void test('connectTimeoutMs NaN, negative, 0 or not a number: connect() rejects, channel() and new Mesh() throw a RangeError naming it; nothing dials', { timeout: 5000 }, async () => {
  const bad = [NaN, -1, 0, '100' as unknown as number];
  for (const connectTimeoutMs of bad) {
    const named = (error: unknown): boolean => error instanceof RangeError && /connectTimeoutMs must be a number of ms, above 0/.test(error.message);
    // port 1 on loopback: a dial would fail UNAVAILABLE, not with a RangeError
    await assert.rejects(connect('tcp://127.0.0.1:1', { connectTimeoutMs }), named, `connect() with ${String(connectTimeoutMs)}`);
    assert.throws(() => channel('tcp://127.0.0.1:1', { connectTimeoutMs }), named, `channel() with ${String(connectTimeoutMs)}`);
    assert.throws(() => new Mesh({ name: 'a', connectTimeoutMs }), named, `new Mesh() with ${String(connectTimeoutMs)}`);
  }
});

// Regression (issue 9): setTimeout fires a delay past 2^31-1 ms after 1 ms, so connectTimeoutMs: Infinity failed every dial at once.
void test('connectTimeoutMs: Infinity sets no bound of its own: the connect succeeds', { timeout: 5000 }, async (t) => {
  const Echo = defineService('echo.v1', { echo: unary<string, string>() });
  const server = await listen('tcp://127.0.0.1:0', { services: [serve(Echo, { echo: (s) => s })] });
  t.after(() => server.close({ graceMs: 0 }));
  const attempt = connect(server.url, { connectTimeoutMs: Infinity });
  // hold the event loop past 1 ms before the socket's connect is read: a timer armed with Infinity (fired by Node after
  // 1 ms) would now run first and fail the dial, as it did
  const until = performance.now() + 20;
  while (performance.now() < until);
  const session = await within(attempt, 2000, 'connect with connectTimeoutMs: Infinity');
  t.after(() => session.close({ graceMs: 0 }));
  assert.equal(await session.client(Echo).echo('no bound'), 'no bound');
});
