/**
 * The bench's peers and bulk bodies start and finish a tiny run: each scenario's server and client in THIS process
 * (the bench runs them in two pinned processes), driven through the same Scenario contract roles/side.ts drives: start,
 * ~100 ms of load, stop, finish, close. What is checked is that they work, never how fast: the echo calls complete,
 * every byte a transfer sent is counted at the other end, and yamux's keepalive ping was answered (the RTT its
 * receive window grows by; Node 20 needs the Promise.withResolvers polyfill for it) and its window grew past 256 KiB.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { loadScenario, type BulkBody, type ScenarioName, type SystemName } from '../../bench/systems/index.js';
import { ByteMeter, type SideContext } from '../../bench/systems/scenario.js';

const LOAD_MS = 100;
const LIBRARY = pathToFileURL(new URL('../../src/index.ts', import.meta.url).pathname).href;

interface Side {
  ctx: SideContext;
  stop(): void;
  latencies: number;
}

function side(): Side {
  const stop = new AbortController();
  const s: Side = {
    latencies: 0,
    stop: () => stop.abort(),
    ctx: {
      received: new ByteMeter(),
      sent: new ByteMeter(),
      stopSending: stop.signal,
      facts: {},
      recordLatency: () => void s.latencies++,
      fail(err: unknown): never {
        throw err;
      },
    },
  };
  return s;
}

/** One run of `scenario` on `system`: both sides here, LOAD_MS of load, then both stop and finish. */
async function run(system: SystemName, scenario: ScenarioName, options: { concurrency?: number; body?: BulkBody } = {}): Promise<{ server: Side; client: Side }> {
  const spec = { system, scenario, library: system === 'gridwire' ? LIBRARY : '', concurrency: options.concurrency ?? 1, meshUrls: null, payload: 'bytes' as const, body: options.body ?? 'generator' };
  const scene = await loadScenario(spec);
  const server = side();
  const client = side();
  const serverSide = await scene.startServer(server.ctx);
  const clientSide = await scene.connectClient(serverSide.target, client.ctx);
  try {
    await clientSide.start();
    await new Promise((resolve) => setTimeout(resolve, LOAD_MS));
    server.stop();
    client.stop();
    await Promise.all([clientSide.finish(), serverSide.finish()]);
  } finally {
    await clientSide.close();
    await serverSide.close();
  }
  return { server, client };
}

function assertTransfer(direction: 'upload' | 'download', { server, client }: { server: Side; client: Side }): void {
  const [sender, receiver] = direction === 'upload' ? [client, server] : [server, client];
  assert.ok(sender.ctx.sent.total > 0, 'nothing was sent');
  assert.equal(receiver.ctx.received.total, sender.ctx.sent.total);
}

for (const direction of ['upload', 'download'] as const) {
  void test(`yamux bulk-${direction}: every byte arrives; the keepalive RTT is known and the receive window grew`, { timeout: 10_000 }, async () => {
    const sides = await run('yamux', `bulk-${direction}`);
    assertTransfer(direction, sides);
    const receiver = direction === 'upload' ? sides.server : sides.client;
    for (const s of [sides.server, sides.client]) assert.ok((s.ctx.facts.yamuxRttMs ?? -1) >= 0, 'RTT unknown');
    assert.ok((receiver.ctx.facts.yamuxRecvWindowKiB ?? 0) > 256, `window stayed at ${receiver.ctx.facts.yamuxRecvWindowKiB} KiB`);
  });

  void test(`raw-1m bulk-${direction}: every byte arrives`, { timeout: 10_000 }, async () => {
    assertTransfer(direction, await run('raw-1m', `bulk-${direction}`));
  });

  for (const body of ['readable', 'web-stream', 'bytes', 'pipeline'] as const) {
    void test(`gridwire bulk-${direction} with a ${body} body: every byte arrives`, { timeout: 10_000 }, async () => {
      assertTransfer(direction, await run('gridwire', `bulk-${direction}`, { body }));
    });
  }
}

// after the yamux bulk tests: capnweb installs Promise.withResolvers when it loads, which would hide a missing polyfill
for (const system of ['yamux', 'capnweb'] as const) {
  for (const concurrency of [1, 8]) {
    void test(`${system} echo at c=${concurrency}: calls complete`, { timeout: 10_000 }, async () => {
      const { client } = await run(system, 'echo', { concurrency });
      assert.ok(client.latencies > 0, 'no call completed');
    });
  }
}
