/**
 * What `mesh.stats()` and `peer.stats()` return: per peer, its lanes (control connections, the data lane) summed, with
 * every connection it has had counted (closed ones kept, so counts only grow across redials); and the node's totals,
 * peers removed included. Computed when asked. Peers are named by the mesh's own configuration, never by what a
 * dialer claims, so a collector may label by them.
 */
import { addSessionStats, emptySessionStats, type SessionStats } from '../rpc/session-stats.js';
import type { LinkState } from '../channel/link.js';

/** One peer: its lanes summed, and its state. */
export interface PeerStats extends SessionStats {
  /** The peer's state (`peer.state`): `ready` while a control connection is. */
  state: LinkState;
}

export interface MeshStats {
  /** Every peer summed (peers removed since included); `connections` is those open now. */
  totals: SessionStats;
  /** Per peer name. */
  peers: Record<string, PeerStats>;
}

/** @internal */
export function meshStatsOf(peers: Iterable<{ name: string; stats(): PeerStats }>, removed: SessionStats): MeshStats {
  const totals = emptySessionStats();
  addSessionStats(totals, removed);
  const byName: Record<string, PeerStats> = {};
  for (const peer of peers) {
    const stats = peer.stats();
    byName[peer.name] = stats;
    addSessionStats(totals, stats);
  }
  return { totals, peers: byName };
}
