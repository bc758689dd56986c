/**
 * The mesh example (MinIO-style): four named nodes, n1..n4, each its own process (this one is n1), in a full mesh:
 * one connection per pair, and either side of a pair calls the other on it. The cluster runs two distributed
 * operations (node.ts): a quorum lock, and objects stored as 3 data parts + 1 parity part, one per node. Then n4 is
 * killed: calls to it fail fast, and the lock and the objects still work with the 3 nodes left, a quorum.
 * The nodes listen on unix sockets in a temp dir, so the example needs no free ports; on hosts they would be
 * tcp://host:port addresses, nothing else changes.
 *
 * Run: `npm run example:mesh`. Exits 0 when every operation held, before and after n4 was killed.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dialsTo, RpcError, statusName } from '../../src/index.js';
import { startNode, type ClusterNode } from './node.js';
import { ClusterOps, Locker } from './services.js';
import { within } from '../within.js';

const NAMES = ['n1', 'n2', 'n3', 'n4'];
const NODE_SCRIPT = fileURLToPath(new URL('./node-process.ts', import.meta.url));

function log(line: string): void {
  console.log(`[n1] ${line}`);
}

interface NodeProcess {
  child: ChildProcess;
  ready: Promise<void>;
  exited: Promise<number | null>;
}

function startNodeProcess(name: string, socketDir: string): NodeProcess {
  const child = fork(NODE_SCRIPT, [name, socketDir, ...NAMES], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    void exited.then((code) => reject(new Error(`${name} exited (${code}) before it was ready`)));
  });
  return { child, ready, exited };
}

const socketDir = await mkdtemp(join(tmpdir(), 'gw-mesh-'));
const others = new Map<string, NodeProcess>();
let n1: ClusterNode | undefined;
const watchdog = setTimeout(() => {
  log('FAILED: the example took longer than 30 s');
  for (const { child } of others.values()) child.kill('SIGKILL');
  process.exit(1);
}, 30_000).unref();

try {
  // ---- 1. the mesh: every node knows every other by name; the hash of each pair's names picks who dials ----------
  for (const name of NAMES.slice(1)) others.set(name, startNodeProcess(name, socketDir));
  const addresses = Object.fromEntries(NAMES.map((n) => [n, `unix://${socketDir}/${n}.sock`]));
  n1 = await startNode('n1', addresses, log);
  const node = n1;
  await within(Promise.all([...others.values()].map((p) => p.ready)), 20_000, 'n2..n4 reaching every peer'); // the full mesh is up
  const pairs = NAMES.flatMap((a, i) => NAMES.slice(i + 1).map((b) => (dialsTo(a, b) ? `${a}->${b}` : `${b}->${a}`)));
  log(`mesh up: ${NAMES.length} nodes, ${pairs.length} connections, one per pair (dialer->acceptor): ${pairs.join(' ')}`);

  // ---- 2. the quorum lock, and another node asking for it on the same connections -------------------------------
  const held = await node.lock('bucket/photos');
  log(held.summary);
  if (!held.acquired) throw new Error('n1 did not get a free lock');
  const n2 = node.mesh.peer('n2').client(ClusterOps);
  // n1 asks n2 to take the lock: n2 calls n1, n3, n4 for their votes, over the connections of this same mesh
  const whileHeld = await n2.lockAndRelease({ resource: 'bucket/photos' }, { timeoutMs: 5_000 });
  log(`n2 tried while n1 holds it: ${whileHeld.summary}`);
  if (whileHeld.acquired) throw new Error('two nodes held the same lock');
  await held.release();
  const afterRelease = await n2.lockAndRelease({ resource: 'bucket/photos' }, { timeoutMs: 5_000 });
  log(`n2 tried after n1 released it: ${afterRelease.summary}`);
  if (!afterRelease.acquired) throw new Error('n2 did not get the lock n1 released');

  // ---- 3. an object in 3+1 parts across the nodes, read back by another node ------------------------------------
  const photo = randomBytes(3 * 1024 * 1024 + 17);
  log(await node.putObject('photos/cat.jpg', photo));
  const n3 = node.mesh.peer('n3').client(ClusterOps);
  log(`n3 read it: ${(await n3.getObject({ key: 'photos/cat.jpg' }, { timeoutMs: 5_000 })).summary}`);

  // ---- 4. n4 dies: calls to it fail fast, the quorum carries on --------------------------------------------------
  log('--- killing n4 (SIGKILL)');
  const n4 = others.get('n4')!;
  n4.child.kill('SIGKILL');
  await n4.exited;
  const n4Down = new Promise<void>((resolve) => {
    const peer = node.mesh.peer('n4');
    if (peer.state !== 'ready') return resolve();
    peer.on('state', function onState({ state }) {
      if (state === 'ready') return;
      peer.off('state', onState);
      resolve();
    });
  });
  await within(n4Down, 5_000, 'n1 noticing that n4 is gone');
  log(`n1 sees n4 ${node.mesh.peer('n4').state}`);
  const callStarted = performance.now();
  try {
    await node.mesh.peer('n4').client(Locker).lock({ resource: 'x', uid: 'probe', owner: 'n1', ttlMs: 1 }, { timeoutMs: 2_000 });
    throw new Error('a call to the killed n4 succeeded');
  } catch (error) {
    if (!(error instanceof RpcError)) throw error;
    log(`a call to n4 fails fast: ${statusName(error.code)} after ${(performance.now() - callStarted).toFixed(1)} ms (no waiting for a timeout)`);
  }
  const degraded = await node.lock('bucket/photos');
  log(degraded.summary);
  if (!degraded.acquired) throw new Error('the lock failed with a quorum of nodes up');
  await degraded.release();
  log(await node.putObject('photos/dog.jpg', randomBytes(2 * 1024 * 1024)));
  const cat = await node.getObject('photos/cat.jpg');
  if (!cat.data.equals(photo)) throw new Error('photos/cat.jpg came back different');
  log(cat.summary);
  log(`n3 read it: ${(await n3.getObject({ key: 'photos/dog.jpg' }, { timeoutMs: 5_000 })).summary}`);
  log('the quorum held with n4 down');

  // ---- 5. stop: the nodes close their connections gracefully and exit by themselves ------------------------------
  await node.stop();
  n1 = undefined;
  for (const name of ['n2', 'n3']) others.get(name)!.child.kill('SIGTERM');
  const codes = await within(Promise.all(['n2', 'n3'].map((name) => others.get(name)!.exited)), 5_000, 'n2 and n3 exiting after SIGTERM');
  if (codes.some((code) => code !== 0)) throw new Error(`n2 and n3 exited with ${codes.join(', ')}`);
  log('n2 and n3 exited with code 0; mesh example OK');
} catch (error) {
  log(`FAILED: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
} finally {
  for (const { child } of others.values()) child.kill('SIGKILL'); // a no-op for those that have exited
  await n1?.mesh.stop({ graceMs: 0 });
  await rm(socketDir, { recursive: true, force: true });
  clearTimeout(watchdog);
}
