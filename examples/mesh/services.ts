/**
 * The services every node of the mesh example serves, and calls on its peers: a lock table (one vote of a quorum
 * lock), a part store (one part of each erasure-coded object) and the node's own operations, so that any node can be
 * asked to act on the whole cluster.
 */
import { defineService, download, unary, upload } from '../../src/index.js';

/** One node's vote in a distributed lock (as in MinIO's dsync): granted unless someone else holds the resource. */
export const Locker = defineService('example.mesh.locker.v1', {
  lock: unary<{ resource: string; uid: string; owner: string; ttlMs: number }, { granted: boolean; heldBy?: string }>(),
  unlock: unary<{ resource: string; uid: string }, { released: boolean }>(),
});

export interface PartMeta {
  key: string;
  /** 0..2: data parts; 3: the parity part. */
  index: number;
  /** The whole object's size and sha256, so any 3 parts can rebuild and check it. */
  objectBytes: number;
  objectSha256: string;
  partSha256: string;
}

/** One node's share of the objects: a part of each, stored and served as raw bytes (bulk calls). */
export const PartStore = defineService('example.mesh.parts.v1', {
  putPart: upload<PartMeta, { stored: boolean }>(),
  statPart: unary<{ key: string; index: number }, PartMeta>(),
  getPart: download<{ key: string; index: number }>(),
});

export interface LockOutcome {
  acquired: boolean;
  /** A one-line account: who granted, who refused (held by whom), who failed (with which status, how fast). */
  summary: string;
}

/** Operations on the whole cluster, run by the node asked: how one node makes another act. */
export const ClusterOps = defineService('example.mesh.ops.v1', {
  /** Acquires `resource` on a quorum and releases it at once: does this node get the lock now? */
  lockAndRelease: unary<{ resource: string }, LockOutcome>(),
  /** Reads an object from the parts on the cluster, rebuilding a missing part. */
  getObject: unary<{ key: string }, { bytes: number; sha256: string; summary: string }>(),
});
