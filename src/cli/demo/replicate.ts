/**
 * The demo's replication, on top of the resumable transfer (src/cli/transfer/): A sends the generated dataset
 * (dataset.ts) to each receiver at the same time, one `sendTransfer` per peer over the mesh (bulk calls take the peer's
 * data lane); a cut is resumed by the transfer itself from the receiver's last verified offset. Receivers serve the
 * transfer service over their store directory. Also the receivers' own end check: the sha256 of the file as written.
 */
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Mesh } from '../../mesh/mesh.js';
import type { ServiceImpl } from '../../rpc/server/registry.js';
import type { Client } from '../../rpc/client/typed-client.js';
import { TransferService, type TransferMethods } from '../transfer/protocol.js';
import { sendTransfer } from '../transfer/send.js';
import { TransferServer } from '../transfer/service.js';
import { FileStore } from '../transfer/sink.js';
import { generatedSource } from '../transfer/source.js';
import { generateDataset } from './dataset.js';
import type { HoldAt, TransferProgress } from './messages.js';

/** A sender that makes no progress for this long gives up (the demo's own bounds are shorter). */
const RETRY_FOR_MS = 30_000;
/**
 * 1 MiB chunks, 8 in flight (the transfer's defaults are 4 MiB and 4): each chunk is hashed in one piece on the
 * event loop, on both sides, so smaller chunks keep that pause (~2 ms instead of ~8) out of the unary latencies the
 * demo reports; on a busy 2-core machine this measured p50 10 ms instead of 18 and more MiB/s. A resume then re-sends
 * at most 8 MiB.
 */
const CHUNK_BYTES = 1024 * 1024;
const WINDOW_CHUNKS = 8;
/** An attempt waits this long at most for the peer's data lane, looking every LANE_POLL_MS. */
const READY_WAIT_MS = 10_000;
const LANE_POLL_MS = 20;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The transfer service writing into `dir` (a receiving node's store). */
export function receiverServices(dir: string): ServiceImpl[] {
  mkdirSync(dir, { recursive: true });
  return [new TransferServer(new FileStore(dir)).service];
}

export interface ReplicationOrder {
  to: string[];
  size: number;
  seed: string;
  name: string;
  holdAt?: HoldAt;
}

type Done = (transfer: TransferProgress, error?: string, sourceSha256?: string) => void;
type Held = (to: string, offset: number, verified: number) => void;

export class Replication {
  private readonly transfers = new Map<string, TransferProgress>();
  private readonly abortController = new AbortController();
  private releaseHold: (() => void) | undefined;

  constructor(private readonly mesh: Mesh, private readonly order: ReplicationOrder) {}

  /** Where each transfer stands now. */
  progress(): TransferProgress[] {
    return [...this.transfers.values()].map((t) => ({ ...t }));
  }

  /** Starts every transfer at once; `done` is called once per transfer, `held` when a hold (--kill) is reached. */
  start(done: Done, held: Held): void {
    const { size, seed, name } = this.order;
    for (const to of this.order.to) {
      const progress: TransferProgress = { to, name, doneBytes: 0, totalBytes: size, resentBytes: 0, attempts: 1, resumedFrom: 0, startedAt: Date.now() };
      this.transfers.set(to, progress);
      const hold = this.order.holdAt?.to === to ? this.order.holdAt.offset : undefined;
      sendTransfer({
        client: () => this.clientFor(to),
        source: generatedSource(size, (offset) => (hold === undefined ? generateDataset(seed, size, offset) : this.held(generateDataset(seed, size, offset), offset, hold, progress, held))),
        name,
        signal: this.abortController.signal,
        retryForMs: RETRY_FOR_MS,
        chunkSize: CHUNK_BYTES,
        windowChunks: WINDOW_CHUNKS,
        onProgress: ({ verified }) => (progress.doneBytes = verified),
        onEvent: (event) => {
          if (event.type !== 'resume') return;
          progress.attempts = event.attempt + 1;
          progress.resumedFrom = event.offset;
        },
      }).then(
        (summary) => {
          progress.finishedAt = Date.now();
          progress.resentBytes = summary.resentBytes;
          progress.doneBytes = summary.bytes;
          if (summary.ok) done(progress, undefined, summary.sha256);
          else done(progress, `${to}'s sha256 of the whole file ${summary.peerSha256} differs from ours ${summary.sha256}`);
        },
        (error: unknown) => {
          progress.finishedAt = Date.now();
          done(progress, (error as Error).message);
        },
      );
    }
  }

  /**
   * The transfer client for an attempt: once the peer's data lane is up again (after a cut), so a resume starts as soon
   * as the mesh has redialed instead of failing fast until the transfer's own backoff comes round; bounded, after which
   * the attempt goes ahead and fails UNAVAILABLE, and the transfer's retry decides.
   */
  private async clientFor(to: string): Promise<Client<TransferMethods>> {
    const peer = this.mesh.peer(to);
    const dataUp = (): boolean => [...(peer.sessions.get('data') ?? [])].some((session) => session.acceptsCalls);
    const until = performance.now() + READY_WAIT_MS;
    while (!dataUp() && performance.now() < until && !this.abortController.signal.aborted) await sleep(LANE_POLL_MS);
    return peer.client(TransferService);
  }

  /** Feeds the transfer held at a hold point again. */
  release(): void {
    this.releaseHold?.();
  }

  abort(): void {
    this.release();
    this.abortController.abort(new Error('the demo is stopping'));
  }

  /** `pieces` from `offset`, stopping once at `holdOffset` until `release()`. */
  private async *held(pieces: AsyncIterable<Buffer>, offset: number, holdOffset: number, progress: TransferProgress, held: Held): AsyncGenerator<Buffer> {
    let at = offset;
    for await (const piece of pieces) {
      if (at >= holdOffset && this.order.holdAt !== undefined) {
        this.order.holdAt = undefined; // once
        const released = new Promise<void>((resolve) => (this.releaseHold = resolve));
        held(progress.to, at, progress.doneBytes);
        await released;
      }
      at += piece.length;
      yield piece;
    }
  }
}

/** The sha256 of the copy of `name` in `dir` (after flipping one byte of it when `corrupt`: the test of a failed check). */
export async function verifyReceived(dir: string, name: string, corrupt: boolean): Promise<{ sha256: string; bytes: number; ms: number }> {
  const path = new FileStore(dir).filePath(name);
  const start = performance.now();
  if (corrupt) await flipFirstByte(path);
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const piece of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
    hash.update(piece);
    bytes += piece.length;
  }
  return { sha256: hash.digest('hex'), bytes, ms: Math.round(performance.now() - start) };
}

async function flipFirstByte(path: string): Promise<void> {
  const file = await open(path, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, 0);
    byte[0] = byte[0]! ^ 0xff;
    await file.write(byte, 0, 1, 0);
  } finally {
    await file.close();
  }
}
