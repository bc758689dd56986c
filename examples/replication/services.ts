/**
 * What the sink (the receiving side of the replication) serves, shared by both processes. Small unary calls are the
 * negotiation and travel on the mesh's control connection; `receive` is an upload (a bulk body), so a mesh with
 * `dataLane: true` sends it on the pair's `data` connection.
 */
import { createHash } from 'node:crypto';
import { defineService, unary, upload } from '../../src/index.js';

export interface Snapshot {
  /** `pool/data@s3` */
  name: string;
  /** Identifies the snapshot's content across machines, as ZFS's guid does: equal names are not enough. */
  guid: string;
}

export const Sink = defineService('example.replication.sink.v1', {
  /** The snapshots the sink holds of a dataset, oldest first. */
  listSnapshots: unary<{ dataset: string }, { snapshots: Snapshot[] }>(),
  /** What the sink has received so far of the stream it is receiving, if any (asked while a transfer runs). */
  progress: unary<{ dataset: string }, { receiving: string | null; bytes: number }>(),
  /**
   * An incremental stream from the sink's latest snapshot `from` to `to`. The sink stages it on disk and answers with
   * what it received (bytes and sha256); it is not a snapshot of the sink's until `commit` says its digest is right.
   */
  receive: upload<{ dataset: string; from: Snapshot; to: Snapshot }, { stagingId: string; bytes: number; sha256: string }>(),
  /** Makes a staged stream a snapshot, if the sender's digest equals the sink's own; DATA_LOSS otherwise. */
  commit: unary<{ stagingId: string; bytes: number; sha256: string }, { snapshot: Snapshot }>(),
});

/** The example's stand-in for a ZFS guid: derived from the name, so both sides agree on the snapshots they share. */
export function snapshotGuid(name: string): string {
  return createHash('sha256').update(name).digest('hex').slice(0, 16);
}
