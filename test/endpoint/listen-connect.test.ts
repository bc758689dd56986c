/**
 * listen() and connect() themselves: an invalid option is refused with a RangeError before anything listens or dials
 * (no socket file, no listener, no connection seen by the server), and an onSession callback that throws closes only
 * that session, with no unhandled rejection, while the server keeps accepting.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { describe, test } from 'node:test';

import { connect, listen, type RpcSessionOptions } from '../../src/index.js';
import { bytesService } from '../fixtures/bytes-service.js';
import { Echo, echoService } from '../fixtures/echo-service.js';
import { sleep, socketPath, within } from '../helpers.js';

/** Counts listening servers and sockets this process holds (libuv handle names). */
function activeHandles(kind: 'ServerWrap' | 'SocketWrap'): number {
  return process.getActiveResourcesInfo().filter((name) => name.endsWith(kind)).length;
}

// ---------------------------------------------------------------- tests

void describe('listen() and connect(): bad options', () => {
  // Regression found by review (fixed in 804d265: options checked before listening or dialing).
  void test('listen() with an invalid option (maxFrameBytes: 1; a 300-byte nodeName) rejects with a RangeError before listening', { timeout: 5000 }, async (t) => {
    const servers = activeHandles('ServerWrap');
    const attempts: Array<Promise<unknown>> = [];
    t.after(async () => {
      // on a broken build a listen() may succeed: close what it opened
      for (const attempt of attempts) await attempt.then((server) => (server as { close(o: object): Promise<void> }).close({ graceMs: 0 }), () => undefined);
    });
    const unix = socketPath();
    const cases: Array<[string, RpcSessionOptions]> = [
      [`unix://${unix}`, { maxFrameBytes: 1 }],
      ['tcp://127.0.0.1:0', { maxFrameBytes: 1 }],
      ['tcp://127.0.0.1:0', { nodeName: 'x'.repeat(300) }],
      ['tcp://127.0.0.1:0', { label: 'é'.repeat(150) }], // 300 UTF-8 bytes
    ];
    for (const [url, options] of cases) {
      const attempt = listen(url, { services: [bytesService()], ...options });
      attempts.push(attempt);
      await assert.rejects(attempt, RangeError, `listen(${url}, ${JSON.stringify(options).slice(0, 60)})`);
    }
    assert.equal(existsSync(unix), false, 'no socket file was created');
    assert.ok(activeHandles('ServerWrap') <= servers, 'nothing is left listening');
  });

  // Regression found by review (fixed in 804d265: options checked before listening or dialing).
  void test('connect() with an invalid option rejects with a RangeError before dialing: the server sees no connection', { timeout: 5000 }, async (t) => {
    const accepted: Socket[] = [];
    const plain = createServer((socket) => {
      accepted.push(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    t.after(async () => {
      for (const socket of accepted) socket.destroy();
      await new Promise((resolve) => plain.close(resolve));
    });
    const { port } = plain.address() as { port: number };
    const sockets = activeHandles('SocketWrap');
    for (const options of [{ nodeName: 'x'.repeat(300) }, { maxFrameBytes: 1 }, { handshakeTimeoutMs: -1 }]) {
      await assert.rejects(connect(`tcp://127.0.0.1:${port}`, options), RangeError, JSON.stringify(options).slice(0, 60));
    }
    await sleep(50);
    assert.equal(accepted.length, 0, 'the server saw a connection');
    assert.ok(activeHandles('SocketWrap') <= sockets, 'no socket is left open');
  });
});

void describe('listen(): onSession', () => {
  void test('an onSession callback that throws closes that session, with no unhandled rejection; the server keeps accepting', { timeout: 5000 }, async (t) => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    t.after(() => {
      process.off('unhandledRejection', onUnhandled);
    });
    let accepted = 0;
    const server = await listen('tcp://127.0.0.1:0', {
      services: [echoService()],
      onSession: () => {
        if (++accepted === 1) throw new Error('bug in onSession');
      },
    });
    t.after(() => server.close({ graceMs: 0 }));
    const first = await connect(server.url);
    t.after(() => first.destroy());
    await within(first.closed, 2000, 'the session whose onSession threw is closed');
    const second = await connect(server.url);
    t.after(() => second.destroy());
    assert.equal(await second.client(Echo).echo('next'), 'next');
    await sleep(10);
    assert.deepEqual(unhandled, []);
  });
});
