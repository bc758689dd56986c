/**
 * Live introspection, the `inspect` option: a side that enables it serves the built-in service `gridwire.inspect.v1`
 * (its one method `snapshot` answers inspect-snapshot.ts's look at the connections) like any of its own services, so
 * `authorize` sees `gridwire.inspect.v1/snapshot` and may refuse it, and interceptors wrap it; and each of its
 * sessions runs a stall watch (session/stall-watch.ts) that logs one warning per stream newly blocked on flow-control
 * credit past the threshold. Off by default: nothing is served, no watch runs, streams note no opening time.
 */
import { stderrLog, type LogFn } from '../../log.js';
import type { Session } from '../../session/session.js';
import { StallWatch, type StreamStall } from '../../session/stall-watch.js';
import { CallCounter } from '../call-stats.js';
import { serve } from '../handler.js';
import type { ServiceImpl } from '../server/registry.js';
import { defineService, unary } from '../service.js';
import { inspectSnapshot, type InspectedSession, type InspectSnapshot } from './inspect-snapshot.js';

/** The `inspect` option: `true`, or the threshold past which a stream blocked on credit is stalled. */
export type InspectOption = boolean | { stallThresholdMs?: number };

/** How long a stream may wait for credit before the stall watch names it, unless `stallThresholdMs` says otherwise. */
export const DEFAULT_STALL_THRESHOLD_MS = 5_000;

/** The built-in service a side with `inspect` on serves. JSON, so any client (and jq) reads the snapshot. */
export const InspectService = defineService('gridwire.inspect.v1', {
  /** A look at the connections of the node: see InspectSnapshot. */
  snapshot: unary<Record<string, never>, InspectSnapshot>({ codec: 'json' }),
});

/**
 * @internal The stall threshold of an `inspect` option (undefined: inspect is off). Throws a TypeError or RangeError
 * for a bad one: called where options are first checked.
 */
export function stallThresholdOf(option: unknown): number | undefined {
  if (option === undefined || option === false) return undefined;
  if (option === true) return DEFAULT_STALL_THRESHOLD_MS;
  if (typeof option !== 'object' || option === null) throw new TypeError(`inspect must be true, false or { stallThresholdMs }, got ${typeof option}`);
  const ms = (option as { stallThresholdMs?: unknown }).stallThresholdMs;
  if (ms === undefined) return DEFAULT_STALL_THRESHOLD_MS;
  if (typeof ms !== 'number' || !(ms >= 1 && ms <= 3_600_000)) {
    throw new RangeError(`inspect.stallThresholdMs must be a number of ms in 1..3600000, got ${typeof ms === 'number' ? ms : typeof ms}`);
  }
  return ms;
}

/** @internal `services` with the inspect service added, answering for the sessions `scope` lists. */
export function withInspectService(
  services: readonly ServiceImpl[] | undefined,
  thresholdMs: number | undefined,
  nodeName: string,
  scope: () => Iterable<InspectedSession>,
): readonly ServiceImpl[] | undefined {
  if (thresholdMs === undefined) return services;
  const impl = serve(InspectService, { snapshot: () => inspectSnapshot(scope(), nodeName, thresholdMs) });
  return [...(services ?? []), impl];
}

/**
 * @internal Starts the stall watch of one session (inspect on): streams note when they open from now on, and a stream
 * blocked past `thresholdMs` is logged once, as a warning naming it. Stops when the session closes.
 */
export function watchStalls(core: Session, thresholdMs: number, log: LogFn = stderrLog): void {
  core.counters.timeStreams = true;
  const watch = new StallWatch(() => core.streamList(), thresholdMs, (stall) => log('warn', stallMessage(core, stall)));
  void core.closed.then(() => watch.stop());
}

/** One line for a stalled stream: which connection, which stream and method, how long, and which side is slow. */
export function stallMessage(core: Session, { stream, side, blockedMs }: StreamStall): string {
  const counter = (stream.events as { counter?: unknown }).counter;
  const method = counter instanceof CallCounter ? `${counter.method}, ${counter.direction === 'made' ? 'called by this side' : 'served by this side'}` : 'method unknown';
  const peer = core.peer;
  const where = `stream ${stream.id} (${method}) on the connection with ${peer.nodeName ? `node ${JSON.stringify(peer.nodeName)}` : 'an unnamed peer'} at ${peer.address}`;
  const seconds = (blockedMs / 1000).toFixed(1);
  return side === 'peer'
    ? `${where} has waited ${seconds} s for the peer's flow-control credit: the peer does not read what it asked for (slow side: the peer)`
    : `${where} has had its receive window full for ${seconds} s: this side's reader does not take what arrived (slow side: this one)`;
}
