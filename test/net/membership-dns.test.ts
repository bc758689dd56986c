/**
 * Deliver 6 of issue 14: a mesh's peers from a real DNS server. dnsmasq runs in host 1's namespace and serves the
 * records the test changes (A / AAAA from an --addn-hosts file, re-read on SIGHUP; SRV records from its command line,
 * so changing them restarts it, which its clients see as failed reads); mesh nodes on the other hosts take their peers
 * from it with dnsMembership (re-read every second, a peer removed once missing for a second). A node that appears in
 * DNS is dialed and called; one that disappears is removed everywhere; a DNS server that stops answering changes
 * nothing, with one warning per node.
 */
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { netSkipReason, TestNetwork, type Host } from './fixtures/netns.js';
import { startNode, type NetNode } from './fixtures/net-node.js';
import type { HostNodeConfig } from './fixtures/host-node.js';

const DNSMASQ = '/usr/sbin/dnsmasq';
const skip = netSkipReason() ?? dnsmasqSkipReason();
if (skip !== undefined) console.log(`# test:net membership-dns skipped: ${skip}`);

function dnsmasqSkipReason(): string | undefined {
  try {
    execFileSync(DNSMASQ, ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return `${DNSMASQ} is not installed (Debian: dnsmasq-base)`;
  }
}

/** What every node's mesh takes: fast redials, and a DNS source read every second that gives up a query in 300 ms. */
const INTERVAL_MS = 1_000;
const NODE_OPTIONS: HostNodeConfig['options'] = { fallbackDialAfterMs: 200, reconnect: { initialDelayMs: 50, maxDelayMs: 500, lossSpreadMs: 100 } };

/** dnsmasq in `host`'s namespace: hosts from `hostsFile` (SIGHUP re-reads it), SRV records as given; restartable. */
class DnsServer {
  private child: ChildProcess | undefined;
  constructor(
    private readonly network: TestNetwork,
    private readonly host: Host,
    private readonly dir: string,
  ) {}

  get hostsFile(): string {
    return join(this.dir, 'hosts');
  }

  async start(srv: string[] = []): Promise<void> {
    const args = [
      '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--user=root', '--log-facility=-',
      `--pid-file=${join(this.dir, 'dnsmasq.pid')}`, `--addn-hosts=${this.hostsFile}`, '--local=/mesh.test/', '--local-ttl=1',
      ...srv.map((record) => `--srv-host=${record}`),
    ];
    const child = this.network.spawn(this.host.ns, DNSMASQ, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    let log = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`dnsmasq did not start in 5 s: ${log}`)), 5_000);
      child.stderr!.setEncoding('utf8').on('data', (text: string) => {
        log += text;
        if (/read .*hosts/.test(log)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`dnsmasq exited (${code}): ${log}`));
      });
    });
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.removeAllListeners('exit');
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** Rewrites the hosts file and has dnsmasq read it again. */
  async hosts(lines: string[]): Promise<void> {
    await writeFile(this.hostsFile, `${lines.join('\n')}\n`);
    this.child?.kill('SIGHUP');
  }

  freeze(): void {
    this.child?.kill('SIGSTOP');
  }

  thaw(): void {
    this.child?.kill('SIGCONT');
  }
}

async function dnsSetup(t: TestContext, hosts: number): Promise<{ network: TestNetwork; dns: DnsServer; nodeHosts: Host[] }> {
  const network = await TestNetwork.create(t, { hosts });
  const dir = await mkdtemp(join(tmpdir(), 'gw-dnsmasq-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const dns = new DnsServer(network, network.host(1), dir);
  return { network, dns, nodeHosts: network.hosts.slice(1) };
}

/** `node`'s peer names, sorted. */
async function peersOf(node: NetNode): Promise<string[]> {
  return Object.keys(await node.request<Record<string, string>>('peers', {}, 5_000)).sort();
}

async function untilPeers(node: NetNode, expected: string[], ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  let last: string[] = [];
  while (performance.now() < end) {
    last = await peersOf(node);
    if (JSON.stringify(last) === JSON.stringify([...expected].sort())) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`${what}: node ${node.name} has peers ${JSON.stringify(last)}, expected ${JSON.stringify([...expected].sort())} within ${ms} ms`);
}

/** Every node calls every other (waiting for the connection): the mesh is whole. */
async function allCall(nodes: NetNode[]): Promise<void> {
  await Promise.all(
    nodes.flatMap((from) =>
      nodes.filter((to) => to !== from).map(async (to) => {
        const reply = await from.request<{ node: string }>('echo', { peer: to.name, waitForReady: true, timeoutMs: 10_000 });
        assert.equal(reply.node, to.name, `${from.name} -> ${to.name}`);
      }),
    ),
  );
}

void describe('membership from DNS (dnsmasq in a namespace)', { skip, timeout: 60_000 }, () => {
  void it('A records: nodes named address:port form a mesh; one that appears is dialed and called, one that disappears is removed; a silent server changes nothing', async (t) => {
    const started = performance.now();
    const { network, dns, nodeHosts } = await dnsSetup(t, 5);
    const [h2, h3, h4, h5] = nodeHosts as [Host, Host, Host, Host];
    const name = (host: Host): string => `${host.ipv4}:7000`;
    await dns.hosts([h2, h3, h4].map((h) => `${h.ipv4} nodes.mesh.test`));
    await dns.start();
    const membership = { name: 'nodes.mesh.test', port: 7000, family: 4 as const, servers: [network.host(1).ipv4], intervalMs: INTERVAL_MS, removeAfterMs: INTERVAL_MS, queryTimeoutMs: 300, graceMs: 500 };
    const node = (host: Host): Promise<NetNode> => startNode(network, host, { name: name(host), peers: {}, options: NODE_OPTIONS, dnsMembership: membership });
    const [n2, n3, n4] = await Promise.all([node(h2), node(h3), node(h4)]);
    await Promise.all([n2, n3, n4].map((n) => untilPeers(n, [name(h2), name(h3), name(h4)].filter((x) => x !== n.name), 10_000, 'the first three from DNS')));
    await allCall([n2, n3, n4]);
    t.diagnostic(`three nodes from DNS, every pair called: ${Math.round(performance.now() - started)} ms from the start`);

    // a node appears: it is in DNS before it runs (as a pod is once scheduled); the others add it and call it
    const n5 = await node(h5);
    let mark = performance.now();
    await dns.hosts([h2, h3, h4, h5].map((h) => `${h.ipv4} nodes.mesh.test`));
    await Promise.all([n2, n3, n4, n5].map((n) => untilPeers(n, [h2, h3, h4, h5].map(name).filter((x) => x !== n.name), 5_000, 'n5 added')));
    await allCall([n2, n3, n4, n5]);
    t.diagnostic(`a node added to DNS: known and called by every node ${Math.round(performance.now() - mark)} ms later`);

    // a node disappears from DNS: removed by every other node once missing for removeAfterMs
    mark = performance.now();
    await dns.hosts([h2, h3, h5].map((h) => `${h.ipv4} nodes.mesh.test`));
    await Promise.all([n2, n3, n5].map((n) => untilPeers(n, [h2, h3, h5].map(name).filter((x) => x !== n.name), 6_000, 'n4 removed')));
    t.diagnostic(`a node removed from DNS: removed everywhere ${Math.round(performance.now() - mark)} ms later (interval ${INTERVAL_MS} ms, removeAfterMs ${INTERVAL_MS})`);
    for (const n of [n2, n3, n5]) {
      const removal = n.events.find((e) => e.event === 'membership' && e.change === 'remove');
      assert.equal(removal?.peer, name(h4), `${n.name}'s membership event`);
    }
    await allCall([n2, n3, n5]);

    // the DNS server stops answering (frozen: every query times out): for 3 s, more than removeAfterMs and three reads,
    // nothing is removed, and each node warns once
    dns.freeze();
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    for (const n of [n2, n3, n5]) {
      assert.deepEqual(await peersOf(n), [h2, h3, h5].map(name).filter((x) => x !== n.name), `${n.name} kept its peers`);
      const warnings = n.logs(/membership from dns A nodes\.mesh\.test: .*keeping its last 2 peer/);
      assert.equal(warnings.length, 1, `${n.name} warned once: ${JSON.stringify(n.logs(/membership/))}`);
    }
    dns.thaw();
    await allCall([n2, n3, n5]);
    t.diagnostic(`whole scenario ${Math.round(performance.now() - started)} ms`);
  });

  void it('SRV records with AAAA targets (a headless service): nodes named by their host names over IPv6; a record withdrawn removes its node; a restart of the server is ridden out', async (t) => {
    const started = performance.now();
    const { network, dns, nodeHosts } = await dnsSetup(t, 4);
    const [h2, h3, h4] = nodeHosts as [Host, Host, Host];
    const name = (host: Host): string => `n${host.index}.mesh.test`;
    const srv = (hosts: Host[]): string[] => hosts.map((h) => `_gw._tcp.mesh.test,${name(h)},7000`);
    await dns.hosts([h2, h3, h4].map((h) => `${h.ipv6} ${name(h)}`));
    await dns.start(srv([h2, h3, h4]));
    const membership = { name: '_gw._tcp.mesh.test', srv: true, family: 6 as const, servers: [`[${network.host(1).ipv6}]:53`], intervalMs: INTERVAL_MS, removeAfterMs: INTERVAL_MS, queryTimeoutMs: 300, graceMs: 500 };
    const node = (host: Host): Promise<NetNode> =>
      startNode(network, host, { name: name(host), listen: `tcp://[${host.ipv6}]:7000`, peers: {}, options: NODE_OPTIONS, dnsMembership: membership });
    const [n2, n3, n4] = await Promise.all([node(h2), node(h3), node(h4)]);
    await Promise.all([n2, n3, n4].map((n) => untilPeers(n, [h2, h3, h4].map(name).filter((x) => x !== n.name), 10_000, 'three nodes from SRV')));
    await allCall([n2, n3, n4]);
    const added = n2.events.filter((e) => e.event === 'membership' && e.change === 'add').map((e) => e.url).sort();
    assert.deepEqual(added, [`tcp://[${h3.ipv6}]:7000`, `tcp://[${h4.ipv6}]:7000`]);

    // SRV records change only with a restart: while it is down, reads fail and nothing moves
    const mark = performance.now();
    await dns.stop();
    await dns.start(srv([h2, h3]));
    await Promise.all([n2, n3].map((n) => untilPeers(n, [h2, h3].map(name).filter((x) => x !== n.name), 6_000, 'n4 removed')));
    t.diagnostic(`an SRV record withdrawn: its node removed everywhere ${Math.round(performance.now() - mark)} ms later`);
    for (const [n, other] of [[n2, h3], [n3, h2]] as const) {
      const changes = n.events.filter((e) => e.event === 'membership').map((e) => `${String(e.change)} ${String(e.peer)}`);
      assert.deepEqual(changes.filter((c) => c.endsWith(name(other))), [`add ${name(other)}`], `${n.name}: the restart did not drop ${name(other)}`);
    }
    await allCall([n2, n3]);
    t.diagnostic(`whole scenario ${Math.round(performance.now() - started)} ms`);
  });
});
