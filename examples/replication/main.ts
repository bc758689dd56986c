/**
 * The replication example (zrepl-style push): this process is the source, holding snapshots of `pool/data`; it starts
 * the sink (receiver.ts) as a child process and replicates to it over a mesh of two named nodes with a data lane:
 *   - the CONTROL connection carries the negotiation, small unary calls: which snapshots the sink has, the common
 *     base, what to send, and the commit that makes a received stream a snapshot once its sha256 is verified;
 *   - the DATA connection carries each snapshot stream (an upload), so a control call never waits behind the
 *     stream's bytes in the socket buffers: one is made mid-transfer to show it.
 * Then the data connection is cut in the middle of a stream: the sink discards it (never a complete snapshot), the
 * source negotiates again and resends once the mesh has redialed the data lane.
 *
 * Why a Mesh with `dataLane: true` rather than two channels: the two connections belong to one named peer, are
 * dialed and redialed together, and bulk calls are routed to the data one without the caller choosing; two channels
 * would be two unrelated connections the application must pair and route itself.
 *
 * Run: `npm run example:replication`. Exits 0 when the sink ends up holding every snapshot, verified.
 */
import { fork } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Mesh, RpcError, statusName, type MeshPeer } from '../../src/index.js';
import { Sink, snapshotGuid, type Snapshot } from './services.js';
import { within } from '../within.js';

const DATASET = 'pool/data';
const MiB = 1024 * 1024;
/** Each incremental stream's size: big enough to take a little while, small enough for a test. */
const STREAM_BYTES = 24 * MiB;

function log(line: string): void {
  console.log(`[source] ${line}`);
}

const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;

// The source's snapshots, oldest first.
const localSnapshots: Snapshot[] = ['s1', 's2', 's3', 's4'].map((s) => ({ name: `${DATASET}@${s}`, guid: snapshotGuid(`${DATASET}@${s}`) }));

/**
 * The stand-in for `zfs send -i from to`: a deterministic byte stream (AES-CTR over zeros, keyed by the pair), made
 * on the fly in 1 MiB chunks. `onChunk` sees each chunk before it goes out (the example hashes them, and cuts the
 * connection at a chosen point). A real source passes the output of the command as the body, e.g.
 * `spawn('zfs', ['send', '-i', from, to]).stdout`: any Readable, web ReadableStream or (async) iterable of bytes is one.
 */
async function* sendStream(from: Snapshot, to: Snapshot, onChunk: (chunk: Buffer, sentBefore: number) => void): AsyncGenerator<Buffer> {
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(`${from.guid}>${to.guid}`).digest(), Buffer.alloc(16));
  const zeros = Buffer.alloc(MiB);
  for (let sent = 0; sent < STREAM_BYTES; sent += MiB) {
    const chunk = cipher.update(zeros);
    onChunk(chunk, sent);
    yield chunk;
  }
}

/** The negotiation (control lane): the sink's snapshots, the newest one both sides have, and what comes after it. */
async function plan(sink: MeshPeer): Promise<{ base: Snapshot; toSend: Snapshot[] }> {
  const started = performance.now();
  const { snapshots } = await sink.client(Sink).listSnapshots({ dataset: DATASET }, { waitForReady: true, timeoutMs: 10_000 });
  const theirs = new Set(snapshots.map((s) => s.guid));
  const baseIndex = localSnapshots.findLastIndex((s) => theirs.has(s.guid));
  if (baseIndex < 0) throw new Error('no common snapshot: a full send would be needed (not part of this example)');
  const base = localSnapshots[baseIndex]!;
  const toSend = localSnapshots.slice(baseIndex + 1);
  log(
    `control: sink has ${snapshots.map((s) => s.name.slice(DATASET.length)).join(' ')} ` +
      `(${(performance.now() - started).toFixed(1)} ms); common base ${base.name}; to send: ${toSend.map((s) => s.name.slice(DATASET.length)).join(' ') || 'nothing'}`,
  );
  return { base, toSend };
}

/** True when the pair's data connection is up (a bulk call would use it). */
function dataLaneUp(sink: MeshPeer): boolean {
  return [...(sink.sessions.get('data') ?? [])].some((session) => session.acceptsCalls);
}

/** Waits for the data connection: while it is down a bulk call would fall back to the control connection. */
function whenDataLaneUp(sink: MeshPeer, timeoutMs: number): Promise<void> {
  if (dataLaneUp(sink)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sink.off('state', onState);
      reject(new Error(`the data lane did not come back within ${timeoutMs} ms`));
    }, timeoutMs);
    function onState(): void {
      if (!dataLaneUp(sink)) return;
      clearTimeout(timer);
      sink.off('state', onState);
      resolve();
    }
    sink.on('state', onState);
  });
}

/**
 * Waits (control lane) until the sink is receiving nothing: after a cut it learns of the loss from its own side of
 * the connection, and a new stream sent before that would be refused as a second one.
 */
async function whenSinkIdle(sink: MeshPeer, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { receiving, bytes } = await sink.client(Sink).progress({ dataset: DATASET }, { timeoutMs: 2_000 });
    if (receiving === null) return;
    if (Date.now() > deadline) throw new Error(`the sink is still receiving ${receiving} (${bytes} bytes) after ${timeoutMs} ms`);
    await sleep(20);
  }
}

/**
 * Sends one incremental stream on the data lane and commits it on the control lane. `cutAfterBytes`: destroy the data
 * connection once that much has been handed over, as a dead link or a crashed router would.
 */
async function replicate(sink: MeshPeer, from: Snapshot, to: Snapshot, cutAfterBytes?: number): Promise<void> {
  const client = sink.client(Sink);
  const hash = createHash('sha256');
  let sentBytes = 0;
  const started = performance.now();
  const body = sendStream(from, to, (chunk, sentBefore) => {
    hash.update(chunk);
    sentBytes += chunk.length;
    if (sentBefore === STREAM_BYTES / 2) {
      // a control call in the middle of the stream: it does not queue behind the stream's bytes
      const asked = performance.now();
      client.progress({ dataset: DATASET }, { timeoutMs: 2_000 }).then(
        ({ receiving, bytes }) => log(`control, mid-stream: sink has ${mib(bytes)} of ${receiving} (answered in ${(performance.now() - asked).toFixed(1)} ms)`),
        (error: unknown) => log(`control, mid-stream: ${(error as Error).message}`),
      );
    }
    if (cutAfterBytes !== undefined && sentBefore === cutAfterBytes) {
      log(`cutting the data connection after ${mib(sentBefore)} of ${to.name} (as a dead link would)`);
      for (const session of sink.sessions.get('data') ?? []) session.destroy(new Error('the example cut the data connection'));
    }
  });
  const received = await client.receive({ dataset: DATASET, from, to }, body, { timeoutMs: 60_000 });
  const sha256 = hash.digest('hex');
  const ms = performance.now() - started;
  log(`sent ${from.name} -> ${to.name}: ${mib(sentBytes)} in ${Math.round(ms)} ms (${(sentBytes / MiB / (ms / 1000)).toFixed(0)} MiB/s), sha256 ${sha256.slice(0, 16)}...`);
  // the commit (control lane): the sink compares what we sent with what it received
  await client.commit({ stagingId: received.stagingId, bytes: sentBytes, sha256 }, { timeoutMs: 5_000 });
  log(`committed ${to.name} on the sink`);
}

// ---- The run -----------------------------------------------------------------------------------------------------

const workDir = await mkdtemp(join(tmpdir(), 'gw-replication-'));
const receiver = fork(fileURLToPath(new URL('./receiver.ts', import.meta.url)), [workDir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const receiverExited = new Promise<number | null>((resolve) => receiver.once('exit', (code) => resolve(code)));
let mesh: Mesh | undefined;
const watchdog = setTimeout(() => {
  log('FAILED: the example took longer than 30 s');
  receiver.kill('SIGKILL');
  process.exit(1);
}, 30_000).unref();

try {
  const sinkUrl = await within(
    new Promise<string>((resolve, reject) => {
      receiver.once('message', (message: { url: string }) => resolve(message.url));
      receiver.once('exit', (code) => reject(new Error(`the sink exited (${code}) before listening`)));
    }),
    10_000,
    'the sink starting',
  );
  mesh = new Mesh({
    name: 'source',
    peers: { sink: sinkUrl }, // no listen address: this node only dials
    dataLane: true, // bulk calls to a peer get their own connection, labelled `data`
    // a quick redial after the cut below; a real cluster keeps the default spread (2 s)
    reconnect: { initialDelayMs: 100, maxDelayMs: 1_000, lossSpreadMs: 200 },
    log: (level, message) => {
      if (level === 'warn') log(`gridwire: ${message}`);
    },
  });
  await mesh.start();
  const sink = mesh.peer('sink');
  let dataWasUp = false;
  sink.on('state', ({ lane, error }) => {
    if (lane !== 'data') return;
    const up = dataLaneUp(sink);
    if (dataWasUp && !up) log(`data lane down${error === undefined ? '' : ` (${error.message})`}; the mesh redials it`);
    dataWasUp = up;
  });

  // 1. negotiate, then send what the sink lacks; the last stream's connection is cut half-way
  let { base, toSend } = await plan(sink);
  await whenDataLaneUp(sink, 10_000);
  for (const [i, to] of toSend.entries()) {
    const from = i === 0 ? base : toSend[i - 1]!;
    const cut = i === toSend.length - 1 ? STREAM_BYTES / 3 : undefined;
    try {
      await replicate(sink, from, to, cut === undefined ? undefined : Math.floor(cut / MiB) * MiB);
    } catch (error) {
      if (cut === undefined || !(error instanceof RpcError)) throw error;
      log(`stream ${from.name} -> ${to.name} failed: ${statusName(error.code)} (${error.rawMessage})`);
      break;
    }
  }

  // 2. negotiate again once the sink has dropped the cut stream: it must not hold it; resend from the new base
  await whenSinkIdle(sink, 10_000);
  ({ base, toSend } = await plan(sink));
  if (toSend.length === 0) throw new Error('the sink took a cut stream as a complete snapshot');
  log(`the cut stream was refused: the sink does not hold ${toSend.map((s) => s.name).join(', ')}`);
  const waitStarted = performance.now();
  await whenDataLaneUp(sink, 10_000);
  log(`data lane up again (waited ${Math.round(performance.now() - waitStarted)} ms); resending`);
  for (const to of toSend) {
    await replicate(sink, base, to);
    base = to;
  }

  // 3. the sink now holds every snapshot
  ({ toSend } = await plan(sink));
  if (toSend.length !== 0) throw new Error('the sink is still missing snapshots');
  log('in sync: every snapshot replicated, each verified by sha256 on the sink');
  await mesh.stop({ graceMs: 1_000 });
  receiver.kill('SIGTERM');
  const code = await within(receiverExited, 5_000, 'the sink exiting after SIGTERM');
  if (code !== 0) throw new Error(`the sink exited with code ${code}`);
  log('sink exited with code 0; replication example OK');
} catch (error) {
  log(`FAILED: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
} finally {
  receiver.kill('SIGKILL'); // a no-op once it has exited
  await mesh?.stop({ graceMs: 0 });
  await rm(workDir, { recursive: true, force: true });
  clearTimeout(watchdog);
}
