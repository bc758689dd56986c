/**
 * A socket with a read budget (a mesh's `data` lane) delivers at most about that much per event-loop turn, so a bulk
 * transfer cannot hold the loop while other connections' small replies wait; nothing is lost or reordered.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createConnection, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { SocketTransport } from '../../src/transport/socket.js';
import type { Transport } from '../../src/transport/transport.js';
import { dialWebSocket, listenWebSocket } from '../../src/transport/websocket.js';
import { deferred, within } from '../helpers.js';
import { meterTurns, patternedBytes } from '../fixtures/turn-meter.js';

void test('a SocketTransport with a 64 KiB read budget delivers at most ~64 KiB per loop turn, every byte in order', { timeout: 10_000 }, async (t) => {
  const accepted = deferred<Socket>();
  const server = createServer({ pauseOnConnect: true }, (socket) => accepted.resolve(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  const client = createConnection({ host: '127.0.0.1', port: address.port });
  t.after(() => {
    client.destroy();
    server.close();
  });
  const transport = new SocketTransport(await accepted.promise, { transport: 'tcp', address: 'test' });
  transport.setReadBudget(64 * 1024);

  const total = 8 * 1024 * 1024;
  const payload = patternedBytes(total);
  const meter = meterTurns(total);
  transport.attach(meter.sink);
  client.write(payload);
  await within(meter.done, 8000, 'all bytes to arrive');
  assert.equal(meter.digest(), createHash('sha256').update(payload).digest('hex'), 'every byte, in order');
  // pause() stops delivery, but the stream may already hold up to its highWaterMark, delivered on resume: the bound is a
  // few chunks per turn (measured ~190 KB), against ~2 MiB without a budget (libuv's 32 reads of 64 KiB)
  assert.ok(meter.maxTurn <= 256 * 1024, `at most ${meter.maxTurn} bytes delivered in one loop turn`);
  transport.destroy();
});

void test('a WebSocketTransport with a 64 KiB read budget delivers at most ~64 KiB per loop turn (its messages taken as views), every byte in order', { timeout: 10_000 }, async (t) => {
  const accepted = deferred<Transport>();
  const listener = await listenWebSocket('ws://127.0.0.1:0/budget', (transport) => accepted.resolve(transport));
  const transport = await dialWebSocket(listener.url);
  const server = await accepted.promise;
  server.attach({ onData() {}, onEnd() {}, onClose() {}, onDrain() {} });
  t.after(async () => {
    transport.destroy();
    server.destroy();
    await listener.close();
  });
  transport.setReadBudget!(64 * 1024);

  const total = 8 * 1024 * 1024;
  const payload = patternedBytes(total);
  const meter = meterTurns(total);
  transport.attach(meter.sink);
  const chunks: Buffer[] = [];
  for (let at = 0; at < total; at += 65_536) chunks.push(payload.subarray(at, at + 65_536));
  server.write(chunks);
  await within(meter.done, 8000, 'all bytes to arrive');
  assert.equal(meter.digest(), createHash('sha256').update(payload).digest('hex'), 'every byte, in order');
  // as over TCP: the socket pauses once a turn's messages reach the budget, and what it holds then still comes
  assert.ok(meter.maxTurn <= 256 * 1024, `at most ${meter.maxTurn} bytes delivered in one loop turn`);
});
