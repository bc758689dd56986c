/**
 * The errors a user meets outside a handler's own: every rejection of a public promise (ping, ready, whenReady,
 * listen, mesh.start, a bidi send) is an RpcError with a status that says what happened (UNAVAILABLE with "closed"
 * after close, retrySafe when nothing was sent); mistakes in the arguments themselves are TypeErrors and RangeErrors.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { bidi, defineService, listen, Mesh, serve, Status, type MessageStream } from '../../src/index.js';
import { openChannel, startServer } from '../fixtures/connections.js';
import { againstRawPeer } from '../fixtures/sessions.js';
import { openConn, rejectsWithStatus, socketPath, within } from '../helpers.js';

void describe('every rejection a user can see is an RpcError', () => {
  void test('ping() after close(): UNAVAILABLE, says the session is closed, retrySafe (no PING was sent)', { timeout: 5000 }, async (t) => {
    const { caller } = await openConn(t, 'memory', false);
    await within(caller.close({ graceMs: 0 }), 1000, 'close');
    const error = await rejectsWithStatus(caller.ping(), Status.UNAVAILABLE, 'ping after close');
    assert.match(error.message, /the session is closed/);
    assert.equal(error.retrySafe, true);
  });

  void test('ping() during the handshake, then close(): the ping and ready reject UNAVAILABLE; the 17th waiting ping RESOURCE_EXHAUSTED', { timeout: 5000 }, async (t) => {
    // the raw peer never sends its HELLO and never answers a PING
    const { session } = againstRawPeer(t, 'dialer', {}, {}, true);
    const ready = session.ready;
    const pings = Array.from({ length: 16 }, () => session.ping());
    await rejectsWithStatus(session.ping(), Status.RESOURCE_EXHAUSTED, 'the 17th ping');
    const closing = session.close();
    for (const [i, ping] of pings.entries()) await rejectsWithStatus(within(ping, 1000, `ping ${i}`), Status.UNAVAILABLE, `ping ${i} in flight at the close`);
    const readyError = await rejectsWithStatus(within(ready, 1000, 'ready'), Status.UNAVAILABLE, 'ready of a session closed in its handshake');
    assert.match(readyError.message, /closed/);
    await within(closing, 1000, 'close');
  });

  void test("ready of a session the peer refuses rejects UNAVAILABLE with the peer's reason", { timeout: 5000 }, async (t) => {
    const { session } = againstRawPeer(t, 'dialer', { admit: () => 'not on the list' });
    const error = await rejectsWithStatus(within(session.ready, 1000, 'ready'), Status.UNAVAILABLE, 'ready of a refused peer');
    assert.match(error.message, /refused: not on the list/);
  });

  void test('channel.whenReady() and a waiting call after channel.close(): UNAVAILABLE', { timeout: 5000 }, async (t) => {
    const { server } = await startServer(t);
    const ch = openChannel(t, server.url);
    await within(ch.whenReady(), 2000, 'connected');
    await within(ch.close({ graceMs: 0 }), 1000, 'channel close');
    const error = await rejectsWithStatus(ch.whenReady(), Status.UNAVAILABLE, 'whenReady after close');
    assert.match(error.message, /closed/);
  });

  void test('listen() on an address in use: UNAVAILABLE, with Node\'s error as the cause; a malformed address stays a TypeError', { timeout: 5000 }, async (t) => {
    const { server } = await startServer(t);
    const error = await rejectsWithStatus(listen(server.url), Status.UNAVAILABLE, 'listen on a bound port');
    assert.match(error.message, /cannot listen on/);
    assert.equal((error.cause as NodeJS.ErrnoException).code, 'EADDRINUSE');
    await assert.rejects(listen('http://example.com'), TypeError);
  });

  void test('mesh.start() twice, or after stop(): FAILED_PRECONDITION', { timeout: 5000 }, async () => {
    const mesh = new Mesh({ name: 'a', listen: `unix://${socketPath()}`, log: () => undefined });
    await within(mesh.start(), 2000, 'start');
    await rejectsWithStatus(mesh.start(), Status.FAILED_PRECONDITION, 'a second start()');
    await within(mesh.stop({ graceMs: 0 }), 2000, 'stop');
    const stopped = new Mesh({ name: 'b', log: () => undefined });
    await stopped.stop();
    await rejectsWithStatus(stopped.start(), Status.FAILED_PRECONDITION, 'start() after stop()');
  });

  void test('a bidi send() after end(), or while an earlier send() waits for credit: FAILED_PRECONDITION; the call goes on', { timeout: 5000 }, async (t) => {
    const Sink = defineService('test.ApiErrors.Sink', { take: bidi<Uint8Array, Uint8Array>({ codec: 'raw' }) });
    const impl = serve(Sink, {
      take: async function* (requests: MessageStream<Uint8Array>) {
        let bytes = 0;
        for await (const chunk of requests) bytes += chunk.byteLength;
        yield new Uint8Array([bytes % 256]);
      },
    });
    const { caller } = await openConn(t, 'memory', false, { services: [impl] });
    const call = caller.client(Sink).take();
    const big = call.send(new Uint8Array(200 * 1024)); // past the stream's send queue: waits for credit
    await rejectsWithStatus(call.send(new Uint8Array(1)), Status.FAILED_PRECONDITION, 'a send while one waits');
    await within(big, 2000, 'the big send');
    call.end();
    await rejectsWithStatus(call.send(new Uint8Array(1)), Status.FAILED_PRECONDITION, 'a send after end()');
    const replies: unknown[] = [];
    for await (const reply of call) replies.push(reply);
    assert.equal(replies.length, 1, 'the call finished normally');
  });
});
