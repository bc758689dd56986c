/**
 * Fail-fast calls and redials (gRFC A62's sticky TRANSIENT_FAILURE): once a link has lost its connection or failed a
 * dial, its fail-fast calls fail UNAVAILABLE at once until a connection is ready again, including while a redial is
 * in progress. The redial of a host that has just gone silent (a partition, a crash without a reset) hangs until
 * connectTimeoutMs: a fail-fast call must not wait for it. A fail-fast call made during a link's first dial, before
 * anything failed, still waits for that dial (test/net/partition-heal shows the behaviour across real hosts).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Socket } from 'node:net';

import { Status } from '../../src/index.js';
import { openChannel, startServer } from '../fixtures/connections.js';
import { Svc, svcService } from '../fixtures/mesh-service.js';
import { startTcpProxy } from '../fixtures/tcp-proxy.js';
import { rejectsWithStatus, until, within } from '../helpers.js';

void describe('fail-fast calls after a failure', () => {
  void test('T-X5 a fail-fast call during a redial after a loss fails UNAVAILABLE at once instead of waiting for the dial (connectTimeoutMs)', { timeout: 15_000 }, async (t) => {
    const { server } = await startServer(t, { services: [svcService('s')] });
    // the proxy forwards while `silent` is false; once true it accepts connections and never answers (a host gone quiet)
    let silent = false;
    const accepted = new Set<Socket>();
    const url = await startTcpProxy(t, server.url, (client, upstream) => {
      accepted.add(client);
      client.once('close', () => accepted.delete(client));
      if (silent) return;
      client.pipe(upstream);
      upstream.pipe(client);
    });
    const ch = openChannel(t, url, { connectTimeoutMs: 5_000, reconnect: { initialDelayMs: 20, maxDelayMs: 200, lossSpreadMs: 0 } });
    const client = ch.client(Svc);
    // a fail-fast call made during the very first dial waits for it: nothing has failed yet
    assert.equal(ch.state, 'connecting');
    assert.equal((await within(client.whoami('first dial'), 3_000, 'a fail-fast call during the first dial')).node, 's');
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // a connection that lasted: its end is a loss

    silent = true;
    for (const socket of accepted) socket.destroy(); // the connection is lost; the redial reaches a silent listener
    await until(() => ch.state === 'connecting' && accepted.size > 0, 3_000, 'the redial in progress (connected, no handshake answer)');

    const started = performance.now();
    const error = await rejectsWithStatus(client.whoami('during the redial', { timeoutMs: 4_000 }), Status.UNAVAILABLE, 'a fail-fast call during the redial');
    const waitedMs = performance.now() - started;
    assert.ok(waitedMs < 200, `a fail-fast call failed after ${waitedMs.toFixed(0)} ms: it waited for a redial of a link that had just failed`);
    assert.equal(error.retrySafe, true, 'never sent');
    assert.match(error.message, /not connected/);

    // the link is whole again once a dial succeeds: fail-fast calls work
    silent = false;
    for (const socket of accepted) socket.destroy(); // ends the silent dial now rather than at connectTimeoutMs
    assert.equal((await within(client.whoami('after', { waitForReady: true, timeoutMs: 5_000 }), 6_000, 'a waitForReady call after the silence')).node, 's');
    assert.equal(ch.state, 'ready');
    assert.equal((await client.whoami('fail-fast again')).node, 's', 'fail-fast calls work again once connected');
  });
});
