/**
 * Hosts (issue 14, deliver 1): N network namespaces on one bridge, each running a gridwire mesh node process with the
 * other N-1 as peers; every node calls every other (a unary echo, a server stream, an upload and a download whose
 * sha256 both ends compare), and every pair ends with exactly one control connection, the same at both ends: as the
 * mesh reports it, and as each host's kernel does (its established TCP connections).
 *
 * N is 8; GRIDWIRE_NET_HOSTS=4..16 picks another (16 works on 2 cores within the bound: see the figures it prints).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dialsTo } from '../../src/index.js';
import { netSkipReason, execIn, TestNetwork, type Host } from './fixtures/netns.js';
import { nodeUrl, startNode, type NetNode } from './fixtures/net-node.js';
import { CallLog, mib } from './fixtures/net-figures.js';

const HOSTS = Number(process.env.GRIDWIRE_NET_HOSTS ?? 8);
if (!(Number.isInteger(HOSTS) && HOSTS >= 4 && HOSTS <= 16)) throw new RangeError(`GRIDWIRE_NET_HOSTS must be 4..16, got ${process.env.GRIDWIRE_NET_HOSTS}`);

const skip = netSkipReason();
if (skip !== undefined) console.log(`# test:net skipped: ${skip}`);

/** Small bodies: the point is that every pair works, not throughput. */
const BULK_BYTES = 256 * 1024;
const TICKS = 64;
const TICK_BYTES = 1024;
const PORT = 7000;

interface Transfer {
  bytes: number;
  sha256: string;
  expected: string;
  ms: number;
}

type Connections = Record<string, { control: number; roles: string[]; dials: boolean; state: string }>;

const nameOf = (host: Host): string => `n${String(host.index).padStart(2, '0')}`;

/** Every call from `from` to `peer`, one after another; failures are collected, not thrown, to report them all. */
async function callPeer(from: NetNode, peer: string, seed: number, log: CallLog, failures: string[]): Promise<void> {
  const call = async <T>(kind: string, cmd: string, args: Record<string, unknown>, check: (result: T) => number): Promise<void> => {
    const started = performance.now();
    try {
      const bytes = check(await from.request<T>(cmd, { peer, timeoutMs: 30_000, ...args }, 45_000));
      log.record(kind, performance.now() - started, bytes);
    } catch (error) {
      log.fail(kind);
      failures.push(`${from.name}->${peer} ${kind}: ${(error as Error).message}`);
    }
  };
  const sameBody = (r: Transfer): number => {
    assert.equal(r.bytes, BULK_BYTES, 'bytes');
    assert.equal(r.sha256, r.expected, 'sha256');
    return r.bytes;
  };
  // the first call waits for the connection: nodes start at different times
  await call<{ node: string }>('unary (echo 1 KiB)', 'echo', { bytes: 1024, waitForReady: true }, (r) => (assert.equal(r.node, peer), 2 * 1024));
  await call<{ received: number }>(`server stream (${TICKS} x 1 KiB)`, 'ticks', { count: TICKS, bytes: TICK_BYTES }, (r) => (assert.equal(r.received, TICKS), TICKS * TICK_BYTES));
  await call<Transfer>('upload 256 KiB', 'upload', { bytes: BULK_BYTES, seed }, sameBody);
  await call<Transfer>('download 256 KiB', 'download', { bytes: BULK_BYTES, seed: seed + 1 }, sameBody);
}

/** The host's established TCP connections of the mesh's port, as `local>remote` pairs of addresses. */
async function meshSockets(host: Host): Promise<{ dialed: string[]; accepted: string[] }> {
  const text = await execIn(host.ns, ['ss', '-Htn', 'state', 'established']);
  const dialed: string[] = [];
  const accepted: string[] = [];
  for (const line of text.split('\n')) {
    const [, , local, remote] = line.trim().split(/\s+/);
    if (local === undefined || remote === undefined) continue;
    if (remote.endsWith(`:${PORT}`)) dialed.push(remote.slice(0, remote.lastIndexOf(':')));
    else if (local.endsWith(`:${PORT}`)) accepted.push(remote.slice(0, remote.lastIndexOf(':')));
  }
  return { dialed: dialed.sort(), accepted: accepted.sort() };
}

void describe('hosts: a mesh of network namespaces', { skip, timeout: 90_000 }, () => {
  void it(`${HOSTS} hosts, each a mesh node with the other ${HOSTS - 1} as peers: every node calls every other (unary, server stream, upload and download with sha256 compared) and each pair keeps exactly one TCP connection`, async (t) => {
    const started = performance.now();
    const network = await TestNetwork.create(t, { hosts: HOSTS });
    const built = performance.now();
    const names = network.hosts.map(nameOf);
    const hostOf = new Map(network.hosts.map((host) => [nameOf(host), host]));
    const nodes = await Promise.all(
      network.hosts.map((host) => {
        const peers = Object.fromEntries(network.hosts.filter((other) => other !== host).map((other) => [nameOf(other), nodeUrl(other, PORT)]));
        return startNode(network, host, { name: nameOf(host), peers }, 60_000);
      }),
    );
    const spawned = performance.now();

    const log = new CallLog();
    const failures: string[] = [];
    await Promise.all(nodes.map((node, i) => Promise.all(names.filter((peer) => peer !== node.name).map((peer, k) => callPeer(node, peer, 1000 * i + 10 * k, log, failures)))));
    const called = performance.now();
    assert.deepEqual(failures, [], 'every call of every ordered pair succeeds');
    assert.equal(log.calls, 4 * HOSTS * (HOSTS - 1));

    // the mesh's view: one control connection per peer, the same one at both ends (one end dialed it, the other
    // accepted it). Usually the designated dialer's: the other end dials only after fallbackDialAfterMs (3 s) without
    // a connection, which a node that started late can see when the designated dialer is backing off from dials it
    // refused; a lone fallback connection is kept (only when both dial does the designated dialer's win)
    const problems: string[] = [];
    const views = await Promise.all(nodes.map((node) => node.request<Connections>('connections')));
    const viewOf = new Map(views.map((view, i) => [names[i]!, view]));
    let designated = 0;
    for (const [self, view] of viewOf) {
      assert.deepEqual(Object.keys(view).sort(), names.filter((name) => name !== self));
      for (const [peer, c] of Object.entries(view)) {
        const theirs = viewOf.get(peer)![self]!;
        if (c.control !== 1 || c.state !== 'ready' || c.dials !== dialsTo(self, peer)) {
          problems.push(`${self}->${peer}: ${c.control} control connection(s) (${c.roles.join('/')}), ${c.state}, dials ${c.dials}`);
        } else if (theirs.control === 1 && (c.roles[0] === 'dialer') === (theirs.roles[0] === 'dialer')) {
          problems.push(`${self}->${peer}: both ends are the ${c.roles[0]} of their connection: two different connections`);
        } else if (c.roles[0] === 'dialer' && c.dials) designated++;
      }
    }
    assert.deepEqual(problems, [], "the mesh's view: one control connection per pair, the same at both ends");

    // the kernel's view: each host has exactly one established connection with each other host, from the end that
    // dialed it to the other's port (a duplicate dial being closed may linger a moment: look again)
    const expected = (host: Host): { dialed: string[]; accepted: string[] } => {
      const view = viewOf.get(nameOf(host))!;
      const addresses = (dialed: boolean): string[] => Object.keys(view).filter((peer) => (view[peer]!.roles[0] === 'dialer') === dialed).map((peer) => hostOf.get(peer)!.ipv4).sort();
      return { dialed: addresses(true), accepted: addresses(false) };
    };
    let sockets = await Promise.all(network.hosts.map(meshSockets));
    for (let tries = 0; tries < 30 && sockets.some((s, i) => JSON.stringify(s) !== JSON.stringify(expected(network.hosts[i]!))); tries++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      sockets = await Promise.all(network.hosts.map(meshSockets));
    }
    for (const [i, host] of network.hosts.entries()) assert.deepEqual(sockets[i], expected(host), `${nameOf(host)}'s established TCP connections (ss)`);
    const connections = sockets.reduce((sum, s) => sum + s.dialed.length, 0);
    assert.equal(connections, (HOSTS * (HOSTS - 1)) / 2, 'one TCP connection per pair in all');

    const s = (ms: number): string => (ms / 1000).toFixed(1);
    t.diagnostic(
      `${HOSTS} hosts: network built in ${s(built - started)} s, ${HOSTS} nodes started in ${s(spawned - built)} s, ` +
        `${log.calls} calls (${HOSTS * (HOSTS - 1)} ordered pairs x 4) in ${s(called - spawned)} s, ${mib(log.bytes)} MiB moved; ${connections} TCP connections (one per pair), ${designated} of them the designated dialer's`,
    );
    for (const line of log.lines()) t.diagnostic(`  ${line}`);
  });
});
