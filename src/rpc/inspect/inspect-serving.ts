/**
 * What the `inspect` option turns on: the built-in service (inspect-service.ts) among a side's services, served like
 * any of them, so `authorize` sees `gridwire.inspect.v1/snapshot` and may refuse it, and interceptors wrap it; and per
 * session a stall watch (session/stall-watch.ts) that logs one warning per stream newly blocked on flow-control credit
 * past the threshold. With inspect off nothing here runs: nothing is served, no watch, streams note no opening time.
 */
import { stderrLog, type LogFn } from '../../log.js';
import type { Session } from '../../session/session.js';
import { StallWatch, type StreamStall } from '../../session/stall-watch.js';
import { CallCounter } from '../call-stats.js';
import type { AnyHandler } from '../server/context.js';
import { servedImpl, type ServiceImpl } from '../server/registry.js';
import { InspectService } from './inspect-service.js';
import { inspectSnapshot, type InspectedSession } from './snapshot-of.js';

/** @internal `services` with the inspect service added, answering for the sessions `scope` lists. */
export function withInspectService(
  services: readonly ServiceImpl[] | undefined,
  thresholdMs: number | undefined,
  nodeName: string,
  scope: () => Iterable<InspectedSession>,
): readonly ServiceImpl[] | undefined {
  if (thresholdMs === undefined) return services;
  // bound as serve() binds, not through it: handler.ts imports rpc-session.ts, which imports this file
  const snapshot: AnyHandler = () => inspectSnapshot(scope(), nodeName, thresholdMs);
  const impl = servedImpl(InspectService, new Map([['snapshot', snapshot]]));
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
