/**
 * Takes an inspect snapshot (inspect-snapshot.ts has its shape) of a set of sessions: reads each core session's
 * streams and counts, names each stream's method from its owner (the call that counts itself: call-stats.ts), and
 * asks the stall watch's rule (session/stall-watch.ts) which streams are stalled. What it lists is bounded
 * (MAX_STREAMS_LISTED, MAX_CONNECTIONS_LISTED): a node with a million streams answers a snapshot that fits in a
 * message, saying how many it left out. Runs only when a snapshot is asked for.
 */
import type { PeerIdentity } from '../../transport/transport.js';
import type { Session } from '../../session/session.js';
import { stallOf } from '../../session/stall-watch.js';
import type { Stream } from '../../session/stream.js';
import { CallCounter } from '../call-stats.js';
import type { SessionStats } from '../session-stats.js';
import type { InspectConnection, InspectSnapshot, InspectStream } from './inspect-snapshot.js';

/** Streams listed in one snapshot, over all its connections (stalled ones first); the rest are counted, not listed. */
export const MAX_STREAMS_LISTED = 2000;
/** Connections listed in one snapshot; the rest are counted. */
export const MAX_CONNECTIONS_LISTED = 500;

/** What the snapshot reads of a session: the core underneath and its stats (an RpcSession). */
export interface InspectedSession {
  readonly core: Session;
  stats(): SessionStats;
}

/** The snapshot of `sessions` now. */
export function inspectSnapshot(sessions: Iterable<InspectedSession>, node: string, stallThresholdMs: number): InspectSnapshot {
  const now = performance.now();
  const snapshot: InspectSnapshot = {
    node, pid: process.pid, takenAt: new Date().toISOString(), stallThresholdMs, stalled: [], inFlight: {}, connections: [], connectionsNotListed: 0,
  };
  let streamsLeft = MAX_STREAMS_LISTED;
  for (const session of sessions) {
    addInFlight(snapshot.inFlight, session.stats());
    if (snapshot.connections.length >= MAX_CONNECTIONS_LISTED) {
      snapshot.connectionsNotListed++;
      continue;
    }
    const connection = connectionOf(session.core);
    const name = `${connection.peer.nodeName || '(unnamed)'} (${connection.peer.address})`;
    const streams = session.core.streamList().map((stream) => streamOf(stream, now, stallThresholdMs));
    streams.sort(stalledFirst);
    for (const stream of streams) {
      if (stream.stalled === undefined) continue;
      snapshot.stalled.push({ connection: name, streamId: stream.id, method: stream.method, direction: stream.direction, blockedMs: stream.stalled.ms, slowSide: stream.stalled.side });
    }
    connection.streams = streams.slice(0, streamsLeft);
    connection.streamsNotListed = streams.length - connection.streams.length;
    streamsLeft -= connection.streams.length;
    snapshot.connections.push(connection);
  }
  snapshot.stalled.sort((a, b) => b.blockedMs - a.blockedMs);
  return snapshot;
}

function connectionOf(core: Session): InspectConnection {
  const { nodeName, label, address, transport, identity } = core.peer;
  const counts = core.counts();
  const connection: InspectConnection = {
    peer: { nodeName, label, address, transport },
    role: core.role,
    ageMs: Math.round(counts.ageMs),
    bytesIn: counts.bytesIn,
    bytesOut: counts.bytesOut,
    sendCredit: core.connectionSendCredit,
    phase: core.phaseName,
    streamsOpen: counts.streamsOpen,
    streams: [],
    streamsNotListed: 0,
  };
  if (identity !== undefined) connection.peer.identity = identityOf(identity);
  if (core.rttMs !== undefined) connection.rttMs = core.rttMs;
  if (core.peerGoawayMessage !== undefined) connection.peerGoaway = core.peerGoawayMessage;
  return connection;
}

function identityOf(identity: PeerIdentity): { subject: string; fingerprint256: string } {
  const subject = identity.commonName ?? Object.entries(identity.subject).map(([key, value]) => `${key}=${String(value)}`).join(', ');
  return { subject, fingerprint256: identity.fingerprint256 };
}

function streamOf(stream: Stream, now: number, thresholdMs: number): InspectStream {
  // the owner of a call's stream counts it (call-stats.ts): it knows the method; an authorize still pending holds it
  const counter = (stream.events as { counter?: unknown }).counter;
  const call = counter instanceof CallCounter ? counter : undefined;
  const blockedMs = stream.creditBlockedSince === undefined ? 0 : now - stream.creditBlockedSince;
  const info: InspectStream = {
    id: stream.id,
    method: call?.method ?? '?',
    direction: call?.direction ?? (stream.outbound ? 'made' : 'served'),
    state: stream.stateName,
    sendCredit: stream.sendWindow,
    sendMessageCredit: stream.sendMessageWindow,
    receiveWindow: stream.recvWindow,
    receiveMessageWindow: stream.recvMessageWindow,
    queuedBytes: stream.queuedBytes,
    unconsumed: stream.unconsumedItems,
    blockedMs: Math.round(blockedMs),
    blockedTotalMs: Math.round((stream.creditBlockedMs ?? 0) + blockedMs),
  };
  if (call?.kind !== undefined) info.kind = call.kind;
  if (stream.openedAt !== undefined) info.ageMs = Math.round(now - stream.openedAt);
  const stall = stallOf(stream, now, thresholdMs);
  if (stall !== undefined) info.stalled = { side: stall.side, ms: Math.round(stall.blockedMs) };
  return info;
}

/** Stalled streams first (longest first), then the longest blocked, then by id. */
function stalledFirst(a: InspectStream, b: InspectStream): number {
  const stalled = (b.stalled?.ms ?? -1) - (a.stalled?.ms ?? -1);
  if (stalled !== 0) return stalled;
  return b.blockedMs - a.blockedMs || a.id - b.id;
}

function addInFlight(into: InspectSnapshot['inFlight'], stats: SessionStats): void {
  for (const [method, counts] of Object.entries(stats.calls.methods)) {
    if (counts.made.inFlight === 0 && counts.served.inFlight === 0) continue;
    const entry = (into[method] ??= { made: 0, served: 0 });
    entry.made += counts.made.inFlight;
    entry.served += counts.served.inFlight;
  }
}
