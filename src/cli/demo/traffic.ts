/**
 * The demo's unary traffic, inside one node: a loop per peer calling its `status` method every `intervalMs` (the next
 * call starts when the last one ended, no sooner than the interval), and what those calls did, per peer, since the
 * last report. A call that fails while an expected-failure window is open (--kill: the peer, or this node, is the one
 * being killed) is counted apart, so the orchestrator can require zero of every other failure.
 */
import type { Mesh } from '../../mesh/mesh.js';
import { RpcError } from '../../rpc/rpc-error.js';
import { Status, statusName } from '../../wire/constants.js';
import type { CallDelta } from './messages.js';
import { DemoStatus } from './service.js';

/** Bound on one call: far above its latency, and what fail-fast is measured against. */
export const CALL_TIMEOUT_MS = 5_000;

export class CallRecorder {
  private deltas = new Map<string, CallDelta>();
  /** The node whose kill makes failures expected (--kill), or null. */
  windowNode: string | null = null;

  constructor(private readonly self: string) {}

  /** Was a failure of a call between us and `peer` expected when it started or ended? */
  expected(peer: string, openedAtStart: string | null): boolean {
    const involved = (node: string | null): boolean => node !== null && (node === peer || node === this.self);
    return involved(openedAtStart) || involved(this.windowNode);
  }

  record(peer: string, status: string, ms: number, expected: boolean): void {
    let delta = this.deltas.get(peer);
    if (delta === undefined) this.deltas.set(peer, (delta = { byStatus: {}, expected: {}, latenciesMs: [] }));
    if (status === 'OK') delta.latenciesMs.push(ms);
    const counts = status !== 'OK' && expected ? delta.expected : delta.byStatus;
    counts[status] = (counts[status] ?? 0) + 1;
  }

  /** What was recorded since the last call, then forgotten. */
  take(): Record<string, CallDelta> {
    const out = Object.fromEntries(this.deltas);
    this.deltas = new Map();
    return out;
  }
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });

/** One call to `peer`, timed and recorded; resolves with its status name, its time and its message. */
export async function timedCall(mesh: Mesh, peer: string, seq: number, recorder: CallRecorder, timeoutMs = CALL_TIMEOUT_MS): Promise<{ status: string; ms: number; message: string }> {
  const windowAtStart = recorder.windowNode;
  const start = performance.now();
  let status = 'OK';
  let message = '';
  try {
    const answer = await mesh.peer(peer).client(DemoStatus).status({ from: mesh.name, seq }, { timeoutMs });
    if (answer.node !== peer || answer.seq !== seq) {
      status = 'WRONG_ANSWER';
      message = `asked ${peer} #${seq}, answered by ${answer.node} #${answer.seq}`;
    }
  } catch (error) {
    const failure = RpcError.from(error);
    status = statusName(failure.code === Status.OK ? Status.UNKNOWN : failure.code);
    message = failure.rawMessage;
  }
  const ms = performance.now() - start;
  recorder.record(peer, status, ms, recorder.expected(peer, windowAtStart));
  return { status, ms, message };
}

/** Calls every peer of `mesh` every `intervalMs` until `signal` aborts. */
export function runTraffic(mesh: Mesh, peers: readonly string[], intervalMs: number, recorder: CallRecorder, signal: AbortSignal): Promise<void> {
  return Promise.all(peers.map(async (peer) => {
    let seq = 0;
    while (!signal.aborted) {
      const start = performance.now();
      await timedCall(mesh, peer, ++seq, recorder);
      await sleep(Math.max(0, intervalMs - (performance.now() - start)), signal);
    }
  })).then(() => undefined);
}
