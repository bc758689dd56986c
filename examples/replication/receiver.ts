/**
 * The sink: the receiving daemon of the replication (zrepl's sink job; `zfs recv` behind it). It listens, serves Sink
 * to the one node allowed to push to it, stages each received stream on disk while hashing it, and takes a stream as
 * a snapshot only when the sender's digest equals its own. A stream that ends any other way (the connection cut, the
 * sender gave up) is discarded: a half-received snapshot is never one.
 *
 * Started by main.ts: `receiver.ts <work dir>`; sends its listening address to the parent (IPC), SIGTERM stops it.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Mesh, RpcError, serve, Status } from '../../src/index.js';
import { Sink, snapshotGuid, type Snapshot } from './services.js';

const workDir = process.argv[2];
if (workDir === undefined) throw new Error('usage: receiver.ts <work dir>');

function log(line: string): void {
  console.log(`[sink]   ${line}`);
}

// The sink already holds the first two snapshots of pool/data (an earlier replication run brought them).
const datasets = new Map<string, Snapshot[]>([
  ['pool/data', ['pool/data@s1', 'pool/data@s2'].map((name) => ({ name, guid: snapshotGuid(name) }))],
]);
const staged = new Map<string, { dataset: string; snapshot: Snapshot; path: string; bytes: number; sha256: string }>();
let receiving: { name: string; bytes: number } | null = null;

function snapshotsOf(dataset: string): Snapshot[] {
  const snapshots = datasets.get(dataset);
  if (snapshots === undefined) throw new RpcError(Status.NOT_FOUND, `no dataset ${dataset} on the sink`);
  return snapshots;
}

const sinkService = serve(Sink, {
  listSnapshots: ({ dataset }) => ({ snapshots: snapshotsOf(dataset) }),

  progress: () => ({ receiving: receiving?.name ?? null, bytes: receiving?.bytes ?? 0 }),

  async receive({ dataset, from, to }, body, ctx) {
    // an incremental stream applies only on top of the sink's latest snapshot: the sender decided on a stale view
    const latest = snapshotsOf(dataset).at(-1);
    if (latest?.guid !== from.guid) {
      throw new RpcError(Status.FAILED_PRECONDITION, `${to.name} is incremental from ${from.name}, but the sink's latest is ${latest?.name ?? 'none'}`);
    }
    if (receiving !== null) throw new RpcError(Status.ABORTED, `already receiving ${receiving.name}`);
    log(`receiving ${from.name} -> ${to.name} on the ${ctx.session.peer.label} connection`);
    const stagingId = randomUUID();
    const path = join(workDir, `${stagingId}.partial`);
    const hash = createHash('sha256');
    const progress = { name: to.name, bytes: 0 };
    receiving = progress;
    try {
      // the body ends only when the sender ended it cleanly: a cut connection makes it throw, never end early
      await pipeline(
        body,
        async function* hashing(chunks: AsyncIterable<Uint8Array>) {
          for await (const chunk of chunks) {
            hash.update(chunk);
            progress.bytes += chunk.length;
            yield chunk;
          }
        },
        createWriteStream(path),
      );
    } catch (error) {
      await rm(path, { force: true });
      log(`receive of ${to.name} failed after ${progress.bytes} bytes: ${(error as Error).message}; staging discarded, ${to.name} NOT taken`);
      throw error;
    } finally {
      receiving = null;
    }
    const sha256 = hash.digest('hex');
    staged.set(stagingId, { dataset, snapshot: to, path, bytes: progress.bytes, sha256 });
    log(`staged ${to.name}: ${progress.bytes} bytes, sha256 ${sha256.slice(0, 16)}...; waiting for the sender's commit`);
    return { stagingId, bytes: progress.bytes, sha256 };
  },

  async commit({ stagingId, bytes, sha256 }) {
    const stage = staged.get(stagingId);
    if (stage === undefined) throw new RpcError(Status.NOT_FOUND, `nothing staged as ${stagingId}`);
    staged.delete(stagingId);
    if (stage.sha256 !== sha256 || stage.bytes !== bytes) {
      await rm(stage.path, { force: true });
      throw new RpcError(Status.DATA_LOSS, `${stage.snapshot.name}: the sender sent sha256 ${sha256}, the sink received ${stage.sha256}`);
    }
    await rename(stage.path, join(workDir, `${stage.snapshot.name.replace(/[/@]/g, '_')}.stream`));
    snapshotsOf(stage.dataset).push(stage.snapshot);
    log(`committed ${stage.snapshot.name}: sha256 verified`);
    return { snapshot: stage.snapshot };
  },
});

const mesh = new Mesh({
  name: 'sink',
  listen: 'tcp://127.0.0.1:0',
  // null: the source dials us; we do not know (or need) its address. Any other node name is refused at the handshake.
  peers: { source: null },
  dataLane: true, // the same lanes as the source's: a control connection and a data connection per pair
  services: [sinkService],
  log: (level, message) => {
    if (level === 'warn') log(`gridwire: ${message}`);
  },
});
await mesh.start();
log(`listening on ${mesh.url}`);
process.send?.({ url: mesh.url }, () => process.disconnect()); // the address to the parent; then the IPC channel is not needed

process.once('SIGTERM', () => {
  log('SIGTERM: stopping');
  void mesh.stop({ graceMs: 1_000 });
});
