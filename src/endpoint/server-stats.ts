/**
 * What `server.stats()` returns: the server's sessions summed (those closed included, so the counts only grow) and
 * each open one with who is on the other end. Computed when asked.
 */
import type { Role } from '../session/role.js';
import type { RpcSession } from '../rpc/rpc-session.js';
import type { SessionStats, StatsSum } from '../rpc/session-stats.js';

/** One open connection's stats, with its peer. */
export interface ConnectionStats extends SessionStats {
  peer: { nodeName: string; label: string; address: string };
  role: Role;
}

export interface ServerStats {
  /** Every session the server has had, summed; `connections` is those open now. */
  totals: SessionStats;
  /** The sessions open now (handshake done), each on its own. */
  sessions: ConnectionStats[];
}

/** A connection's stats with its peer's name, label and address. */
export function connectionStatsOf(session: RpcSession): ConnectionStats {
  const { nodeName, label, address } = session.peer;
  return { peer: { nodeName, label, address }, role: session.role, ...session.stats() };
}

/** @internal */
export function serverStatsOf(sessions: ReadonlySet<RpcSession>, counted: StatsSum): ServerStats {
  return { totals: counted.total(sessions), sessions: [...sessions].map(connectionStatsOf) };
}
