/**
 * One node of the MinIO-style cluster: a Mesh with every other node as a named peer (one connection per pair, either
 * side calls on it), a lock table and a part store it serves, and the two cluster operations built on its peers:
 *   - a quorum lock (dsync): ask every node for its vote, hold the lock with a majority, give back partial votes;
 *   - objects split into 3 data parts and 1 XOR parity part, one part per node: any 3 parts rebuild the object, so
 *     a PUT needs 3 nodes to store their part and a GET 3 nodes to answer.
 * Peers are called fail-fast (the default): a call to a node whose connection is down fails UNAVAILABLE at once
 * instead of waiting for it, so a dead node costs a quorum nothing but its vote.
 * Used by main.ts (node n1) and node-process.ts (the other nodes).
 */
import { createHash, randomUUID } from 'node:crypto';
import { Mesh, RpcError, serve, Status, statusName, type LogFn } from '../../src/index.js';
import { ClusterOps, Locker, PartStore, type LockOutcome, type PartMeta } from './services.js';

/** Every call to a peer is bounded: a node that is up but stuck must not hold an operation for ever. */
const CALL_TIMEOUT_MS = 2_000;
const LOCK_TTL_MS = 30_000;
const DATA_PARTS = 3;
const PARTS = DATA_PARTS + 1;
/** Largest part a node accepts: what a peer may make it hold in memory per call. */
const MAX_PART_BYTES = 16 * 1024 * 1024;

export interface ClusterNode {
  readonly name: string;
  readonly mesh: Mesh;
  /** Acquires a lock on a quorum of the nodes; `release` gives it back. */
  lock(resource: string): Promise<LockOutcome & { release(): Promise<void> }>;
  putObject(key: string, data: Uint8Array): Promise<string>;
  getObject(key: string): Promise<{ data: Buffer; summary: string }>;
  stop(): Promise<void>;
}

/**
 * Starts the node `name` of the cluster `addresses` (every node's name -> its listen address, this one included).
 * Resolves once its connection to every other node is up.
 */
export async function startNode(name: string, addresses: Record<string, string>, log: (line: string) => void): Promise<ClusterNode> {
  const nodes = Object.keys(addresses).sort();
  const quorum = Math.floor(nodes.length / 2) + 1;

  // ---- What this node serves: its vote, its parts -----------------------------------------------------------------

  const locks = new Map<string, { uid: string; owner: string; expiresAt: number }>();
  const lockHandlers = {
    lock({ resource, uid, owner, ttlMs }: { resource: string; uid: string; owner: string; ttlMs: number }) {
      const held = locks.get(resource);
      // a lock whose owner vanished without unlocking expires: a crashed node cannot hold a resource for ever
      if (held !== undefined && held.uid !== uid && held.expiresAt > Date.now()) return { granted: false, heldBy: held.owner };
      locks.set(resource, { uid, owner, expiresAt: Date.now() + ttlMs });
      return { granted: true };
    },
    unlock({ resource, uid }: { resource: string; uid: string }) {
      if (locks.get(resource)?.uid !== uid) return { released: false };
      locks.delete(resource);
      return { released: true };
    },
  };

  const parts = new Map<string, { meta: PartMeta; bytes: Buffer }>();
  const partId = (key: string, index: number): string => `${key}#${index}`;
  function storePart(meta: PartMeta, bytes: Buffer): void {
    if (sha256(bytes) !== meta.partSha256) throw new RpcError(Status.DATA_LOSS, `part ${meta.index} of ${meta.key} arrived damaged`);
    parts.set(partId(meta.key, meta.index), { meta, bytes });
  }
  function findPart(key: string, index: number): { meta: PartMeta; bytes: Buffer } {
    const part = parts.get(partId(key, index));
    if (part === undefined) throw new RpcError(Status.NOT_FOUND, `${name} holds no part ${index} of ${key}`);
    return part;
  }

  const services = [
    serve(Locker, lockHandlers),
    serve(PartStore, {
      async putPart(meta, body) {
        const chunks: Uint8Array[] = [];
        let size = 0;
        for await (const chunk of body) {
          size += chunk.length;
          if (size > MAX_PART_BYTES) throw new RpcError(Status.RESOURCE_EXHAUSTED, `a part is at most ${MAX_PART_BYTES} bytes`);
          chunks.push(chunk);
        }
        storePart(meta, Buffer.concat(chunks));
        return { stored: true };
      },
      statPart: ({ key, index }) => findPart(key, index).meta,
      getPart: ({ key, index }) => findPart(key, index).bytes,
    }),
    serve(ClusterOps, {
      async lockAndRelease({ resource }) {
        const outcome = await lock(resource);
        await outcome.release();
        return { acquired: outcome.acquired, summary: outcome.summary };
      },
      async getObject({ key }) {
        const { data, summary } = await getObject(key);
        return { bytes: data.length, sha256: sha256(data), summary };
      },
    }),
  ];

  // While the cluster starts, dials to nodes not yet listening fail, and gridwire warns after a few in a row; the
  // example shows warnings only once this node has reached all its peers (`allPeersReady`, set by the caller).
  let allPeersReady = false;
  const meshLog: LogFn = (level, message) => {
    if (level === 'warn' && allPeersReady) log(`gridwire: ${message}`);
  };
  const mesh = new Mesh({
    name,
    listen: addresses[name],
    peers: Object.fromEntries(nodes.filter((n) => n !== name).map((n) => [n, addresses[n]!])),
    services,
    // quick redials for the example; a real cluster keeps the defaults
    reconnect: { initialDelayMs: 100, maxDelayMs: 1_000, lossSpreadMs: 500 },
    log: meshLog,
  });
  await mesh.start();
  // every peer's connection up: the node can count on all of them (later, a quorum is enough)
  const peersReady = Promise.all(mesh.peerNames.map((peer) => mesh.peer(peer).whenReady({ timeoutMs: 15_000 }))).then(() => {
    allPeersReady = true;
  });

  // ---- Calls to one node: this one directly, the others over the mesh ---------------------------------------------

  function askLock(node: string, request: Parameters<typeof lockHandlers.lock>[0]): Promise<{ granted: boolean; heldBy?: string }> {
    if (node === name) return Promise.resolve(lockHandlers.lock(request));
    return mesh.peer(node).client(Locker).lock(request, { timeoutMs: CALL_TIMEOUT_MS });
  }
  function askUnlock(node: string, request: { resource: string; uid: string }): Promise<unknown> {
    if (node === name) return Promise.resolve(lockHandlers.unlock(request));
    return mesh.peer(node).client(Locker).unlock(request, { timeoutMs: CALL_TIMEOUT_MS });
  }
  async function sendPart(node: string, meta: PartMeta, bytes: Buffer): Promise<void> {
    if (node === name) return storePart(meta, bytes);
    await mesh.peer(node).client(PartStore).putPart(meta, bytes, { timeoutMs: CALL_TIMEOUT_MS });
  }
  async function fetchPart(node: string, key: string, index: number): Promise<{ meta: PartMeta; bytes: Buffer }> {
    if (node === name) return findPart(key, index);
    const client = mesh.peer(node).client(PartStore);
    const meta = await client.statPart({ key, index }, { timeoutMs: CALL_TIMEOUT_MS });
    const chunks: Uint8Array[] = [];
    for await (const chunk of client.getPart({ key, index }, { timeoutMs: CALL_TIMEOUT_MS })) chunks.push(chunk);
    const bytes = Buffer.concat(chunks);
    if (sha256(bytes) !== meta.partSha256) throw new RpcError(Status.DATA_LOSS, `part ${index} of ${key} from ${node} is damaged`);
    return { meta, bytes };
  }

  // ---- The cluster operations ---------------------------------------------------------------------------------------

  async function lock(resource: string): Promise<LockOutcome & { release(): Promise<void> }> {
    const uid = randomUUID();
    const request = { resource, uid, owner: name, ttlMs: LOCK_TTL_MS };
    const votes = await Promise.all(nodes.map((node) => timed(node, askLock(node, request))));
    const granted = votes.filter((v) => v.value?.granted === true).map((v) => v.node);
    const acquired = granted.length >= quorum;
    const release = async (): Promise<void> => {
      // every node that granted, and every node we could not hear from: it may have granted before its answer was lost
      await Promise.allSettled(votes.filter((v) => v.value?.granted !== false).map((v) => askUnlock(v.node, { resource, uid })));
    };
    if (!acquired) await release(); // a minority of votes must not block the next candidate
    const summary =
      `lock ${resource}: ${acquired ? 'ACQUIRED' : 'REFUSED'} with ${granted.length}/${nodes.length} votes (quorum ${quorum})` +
      describeVotes(votes, (v) => (v.value?.granted === true ? 'granted' : `held by ${v.value?.heldBy}`));
    return { acquired, summary, release };
  }

  async function putObject(key: string, data: Uint8Array): Promise<string> {
    const objectSha256 = sha256(data);
    const shards = encode(data);
    const placement = placementOf(key);
    const results = await Promise.all(
      shards.map((bytes, index) => {
        const meta: PartMeta = { key, index, objectBytes: data.length, objectSha256, partSha256: sha256(bytes) };
        return timed(placement[index]!, sendPart(placement[index]!, meta, bytes).then(() => index));
      }),
    );
    const stored = results.filter((r) => r.error === undefined).length;
    const summary =
      `PUT ${key} (${data.length} bytes, ${DATA_PARTS}+1 parts): ${stored >= DATA_PARTS ? 'OK' : 'FAILED'} with ${stored}/${PARTS} parts stored (write quorum ${DATA_PARTS})` +
      describeVotes(results, (r) => `part ${r.value}`);
    if (stored < DATA_PARTS) throw new RpcError(Status.UNAVAILABLE, summary);
    return summary;
  }

  async function getObject(key: string): Promise<{ data: Buffer; summary: string }> {
    const placement = placementOf(key);
    const results = await Promise.all(placement.map((node, index) => timed(node, fetchPart(node, key, index))));
    const found = results.flatMap((r) => (r.value === undefined ? [] : [r.value]));
    if (found.length < DATA_PARTS) throw new RpcError(Status.UNAVAILABLE, `GET ${key}: only ${found.length} of ${PARTS} parts reachable, ${DATA_PARTS} needed`);
    const { objectBytes, objectSha256 } = found[0]!.meta;
    const byIndex = new Map(found.map((part) => [part.meta.index, part.bytes]));
    const missing = [...Array(DATA_PARTS).keys()].find((index) => !byIndex.has(index));
    const data = decode(byIndex, objectBytes);
    if (sha256(data) !== objectSha256) throw new RpcError(Status.DATA_LOSS, `GET ${key}: the rebuilt object does not match its sha256`);
    const summary =
      `GET ${key}: ${data.length} bytes from ${found.length}/${PARTS} parts` +
      (missing === undefined ? '' : `, data part ${missing} rebuilt from parity`) +
      `, sha256 ${objectSha256.slice(0, 16)}... verified` +
      describeVotes(results, (r) => `part ${r.value?.meta.index}`);
    return { data, summary };
  }

  /** Which node holds part i of `key`: the node list rotated by a hash of the key, so objects spread over the nodes. */
  function placementOf(key: string): string[] {
    const start = createHash('sha256').update(key).digest().readUInt32BE(0) % nodes.length;
    return nodes.map((_, i) => nodes[(start + i) % nodes.length]!);
  }

  try {
    await peersReady;
  } catch (error) {
    await mesh.stop({ graceMs: 0 }); // a node that cannot join does not linger (its mesh would keep the process alive)
    throw error;
  }
  return {
    name,
    mesh,
    lock,
    putObject,
    getObject,
    stop: () => mesh.stop({ graceMs: 1_000 }),
  };
}

// ---- Helpers -------------------------------------------------------------------------------------------------------

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

interface Timed<T> {
  node: string;
  value?: T;
  error?: RpcError;
  ms: number;
}

/** The outcome of one node's call, never a rejection: a quorum is counted over every answer and failure. */
async function timed<T>(node: string, call: Promise<T>): Promise<Timed<T>> {
  const started = performance.now();
  try {
    return { node, value: await call, ms: performance.now() - started };
  } catch (error) {
    return { node, error: RpcError.from(error), ms: performance.now() - started };
  }
}

/** `; n1 granted, n2 granted, n4 UNAVAILABLE in 0.3 ms` */
function describeVotes<T>(results: Timed<T>[], describe: (result: Timed<T>) => string): string {
  const parts = results.map((r) =>
    r.error === undefined ? `${r.node} ${describe(r)}` : `${r.node} ${statusName(r.error.code)} in ${r.ms.toFixed(1)} ms`,
  );
  return `: ${parts.join(', ')}`;
}

/** Splits `data` into 3 equal data parts (the last zero-padded) and their XOR parity part. */
function encode(data: Uint8Array): Buffer[] {
  const size = Math.ceil(data.length / DATA_PARTS);
  const shards = Array.from({ length: DATA_PARTS }, (_, i) => {
    const shard = Buffer.alloc(size);
    shard.set(data.subarray(i * size, (i + 1) * size));
    return shard;
  });
  const parity = Buffer.alloc(size);
  for (const shard of shards) for (let i = 0; i < size; i++) parity[i]! ^= shard[i]!;
  return [...shards, parity];
}

/** The object from any 3 of its 4 parts (index 3 is the parity): a missing data part is the XOR of the other three. */
function decode(parts: Map<number, Buffer>, objectBytes: number): Buffer {
  const size = Math.ceil(objectBytes / DATA_PARTS);
  const shards: Buffer[] = [];
  for (let index = 0; index < DATA_PARTS; index++) {
    let shard = parts.get(index);
    if (shard === undefined) {
      shard = Buffer.alloc(size);
      for (const [other, bytes] of parts) if (other !== index) for (let i = 0; i < size; i++) shard[i]! ^= bytes[i]!;
    }
    shards.push(shard);
  }
  return Buffer.concat(shards).subarray(0, objectBytes);
}
