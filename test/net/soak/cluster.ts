/**
 * The soak's mesh: one node per host of a TestNetwork (names n1..nN, every node a peer of every other), each host
 * `up`, `starting`, `killed` or `frozen` as the faults leave it, and whether the mesh has reconverged: every running
 * node answers an echo from every other, in one round. Knows nothing of calls' bookkeeping or of the schedule.
 *
 *   state      kill()     start()            freeze()   thaw()
 *   up         killed     -                  frozen     -
 *   killed     -          starting -> up     -          -
 *   frozen     killed     -                  -          up
 */
import { nodeUrl, startNode, type NetNode } from '../fixtures/net-node.js';
import type { Host, TestNetwork } from '../fixtures/netns.js';
import type { HostNodeConfig } from '../fixtures/host-node.js';

export type HostState = 'up' | 'starting' | 'killed' | 'frozen';

/** What soakHealth returns (host-node.ts). */
export interface NodeHealth {
  rss: number;
  heapUsed: number;
  external: number;
  resources: Record<string, number>;
  connections: number;
}

export class SoakCluster {
  readonly names: string[];
  private readonly nodes: (NetNode | undefined)[];
  private readonly states: HostState[];
  /** Every process each host has run, for their log lines. */
  private readonly everyNode: NetNode[][];
  /** Per host, how many processes it has run (1 for the first; a restart after kill -9 adds one). */
  readonly incarnations: number[];
  /** Per host, when its current process started. */
  readonly startedAt: number[];

  constructor(
    readonly network: TestNetwork,
    private readonly nodeOptions: HostNodeConfig['options'],
  ) {
    this.names = network.hosts.map((host) => `n${host.index}`);
    this.nodes = network.hosts.map(() => undefined);
    this.states = network.hosts.map(() => 'killed');
    this.everyNode = network.hosts.map(() => []);
    this.incarnations = network.hosts.map(() => 0);
    this.startedAt = network.hosts.map(() => 0);
  }

  get size(): number {
    return this.names.length;
  }

  host(i: number): Host {
    return this.network.hosts[i]!;
  }

  state(i: number): HostState {
    return this.states[i]!;
  }

  /** Hosts whose node runs and answers (neither killed, starting nor frozen). */
  upHosts(): number[] {
    return this.states.flatMap((state, i) => (state === 'up' ? [i] : []));
  }

  /** Starts (or restarts, after kill) the node of host i, with every other host as a peer. */
  async start(i: number): Promise<void> {
    if (this.states[i] !== 'killed') throw new Error(`${this.names[i]} is ${this.states[i]}: only a killed node starts`);
    this.states[i] = 'starting';
    const peers = Object.fromEntries(this.network.hosts.filter((_, j) => j !== i).map((host) => [`n${host.index}`, nodeUrl(host)]));
    try {
      this.nodes[i] = await startNode(this.network, this.host(i), { name: this.names[i]!, peers, options: this.nodeOptions, countTimers: true }, 60_000);
      this.everyNode[i]!.push(this.nodes[i]!);
    } catch (error) {
      this.states[i] = 'killed';
      throw error;
    }
    this.incarnations[i]!++;
    this.startedAt[i] = Date.now();
    this.states[i] = 'up';
  }

  /** kill -9; resolves once the process is gone. */
  async kill(i: number): Promise<void> {
    const node = this.nodes[i];
    if (node === undefined || this.states[i] === 'killed') return;
    this.states[i] = 'killed';
    node.kill('SIGKILL');
    await node.exited;
  }

  freeze(i: number): void {
    if (this.states[i] !== 'up') throw new Error(`${this.names[i]} is ${this.states[i]}: only a running node freezes`);
    this.states[i] = 'frozen';
    this.nodes[i]!.freeze();
  }

  thaw(i: number): void {
    if (this.states[i] !== 'frozen') return;
    this.nodes[i]!.thaw();
    this.states[i] = 'up';
  }

  /** One command to host i's node (whatever its state: a frozen node answers after its thaw). */
  request<T>(i: number, cmd: string, args: unknown, timeoutMs: number): Promise<T> {
    const node = this.nodes[i];
    if (node === undefined) return Promise.reject(Object.assign(new Error(`${this.names[i]} never started`), { code: 'NODE_EXITED' }));
    return node.request<T>(cmd, args, timeoutMs);
  }

  /** The log lines every process of host i reported (gridwire's `log`, with the time it wrote them). */
  logLines(i: number): { at: number; level: string; message: string }[] {
    return this.everyNode[i]!.flatMap((node) => node.events.filter((e) => e.event === 'log').map((e) => ({ at: Number(e.at), level: String(e.level), message: String(e.message) })));
  }

  /** True when every up node answered an echo from every other up node (fail-fast, `timeoutMs` each), all at once. */
  async probeRound(timeoutMs: number): Promise<boolean> {
    const up = this.upHosts();
    const probes = up.flatMap((from) => up.filter((to) => to !== from).map((to) => this.request(from, 'echo', { peer: this.names[to], timeoutMs }, timeoutMs + 5_000)));
    const results = await Promise.allSettled(probes);
    return results.every((result) => result.status === 'fulfilled');
  }

  /**
   * Probes every `everyMs` until one round passes; resolves with when it passed, or rejects after `boundMs` (a mesh that
   * does not reconverge is itself a defect).
   */
  async waitConverged(boundMs: number, everyMs = 1_000): Promise<number> {
    const deadline = Date.now() + boundMs;
    for (;;) {
      if (this.upHosts().length >= 2 && (await this.probeRound(2_000))) return Date.now();
      if (Date.now() > deadline) throw new Error(`the mesh did not reconverge within ${boundMs / 1000} s (up: ${this.upHosts().map((i) => this.names[i]).join(', ')})`);
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  }
}
