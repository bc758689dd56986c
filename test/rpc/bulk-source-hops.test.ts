/**
 * What sending a bulk body costs per chunk, counted: the promises and process.nextTick callbacks the sending process
 * creates (async_hooks: PROMISE and TickObject resources) while it uploads 16 MiB of 64 KiB chunks over TCP to a
 * receiver in another process (test/fixtures/bulk-peer.ts serve), one count per kind of source (rpc/body-pump.ts).
 * Counts, not times: a shared machine changes how often the sender has to wait for credit a little, so each bound has
 * room above what a run gives, and stays well below what the same source cost when every body went through for await
 * (a Readable's async iterator, a promise per item of a sync iterable, a wait per chunk).
 *
 * Before -> after on the machine they were written on (hops per chunk, sender side): async generator 10.2 -> 6.2, sync
 * iterable 9.2 -> 2.2, Node Readable 6.2 -> 3.3, fs read stream 14.2 -> 5.2, web ReadableStream 11.2 -> 6.3.
 *
 * One Uint8Array: sent as frames whose payloads are views of it (no copy), however much larger than the send queue's
 * budget (maxQueuedSendBytes) it is.
 */
import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

import { connect, createMemoryPair, createSession, type RpcSession } from '../../src/index.js';
import { Bulk, CHUNK_BYTES, countingBulk, MiB } from '../fixtures/bulk.js';
import { within } from '../helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PEER = fileURLToPath(new URL('../fixtures/bulk-peer.ts', import.meta.url));
const TOTAL = 16 * MiB;
const CHUNKS = TOTAL / CHUNK_BYTES;

/** A receiver in its own process, so that only the sender's promises and ticks are counted here. */
async function receiver(t: TestContext): Promise<RpcSession> {
  // a fixed 1 MiB bulk window, credited per half window: what is counted is the source's pump, not how often the
  // receiver's credit comes back (a tuned 256 KiB window credits per quarter, a CREDIT and a write per 64 KiB chunk)
  const child = spawn(process.execPath, ['--import', 'tsx', PEER, 'serve', String(1024 * 1024)], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child.stdin.destroy();
  });
  const [line] = (await within(once(child.stdout.setEncoding('utf8'), 'data'), 15_000, `bulk-peer to listen (${stderr})`)) as [string];
  const url = /^listening (\S+)/.exec(line)?.[1];
  assert.ok(url !== undefined, `bulk-peer said ${line}`);
  const session = await connect(url);
  t.after(() => session.destroy());
  return session;
}

/** Promises and nextTicks this process creates while `work` runs, per chunk of the body. */
async function hopsPerChunk(work: () => Promise<unknown>): Promise<{ promises: number; ticks: number }> {
  let promises = 0;
  let ticks = 0;
  const hook = createHook({
    init(_id, type) {
      if (type === 'PROMISE') promises++;
      else if (type === 'TickObject') ticks++;
    },
  });
  hook.enable();
  try {
    await work();
  } finally {
    hook.disable();
  }
  return { promises: promises / CHUNKS, ticks: ticks / CHUNKS };
}

const CHUNK = new Uint8Array(CHUNK_BYTES).fill(0x5a);

/** Each kind of source: 16 MiB of 64 KiB chunks, and the most hops per chunk its upload may take. */
const SOURCES: Array<{ kind: string; bound: number; make: (dir: string) => unknown }> = [
  {
    kind: 'an async generator',
    bound: 8,
    make: () =>
      (async function* body() {
        for (let i = 0; i < CHUNKS; i++) yield CHUNK;
      })(),
  },
  {
    kind: 'a sync generator',
    bound: 4,
    make: () =>
      (function* body() {
        for (let i = 0; i < CHUNKS; i++) yield CHUNK;
      })(),
  },
  {
    kind: 'a Node Readable',
    bound: 4.5,
    make: () => {
      let left = CHUNKS;
      const chunk = Buffer.from(CHUNK.buffer);
      return new Readable({
        highWaterMark: CHUNK_BYTES,
        read() {
          this.push(left-- > 0 ? chunk : null);
        },
      });
    },
  },
  {
    kind: 'an fs read stream',
    bound: 8,
    make: (dir) => createReadStream(path.join(dir, 'body'), { highWaterMark: CHUNK_BYTES }),
  },
  {
    kind: 'a web ReadableStream',
    bound: 8,
    make: () => {
      let left = CHUNKS;
      return new ReadableStream<Uint8Array>({
        pull(controller) {
          if (left-- > 0) controller.enqueue(CHUNK);
          else controller.close();
        },
      });
    },
  },
];

void describe('bulk sources: promises and ticks per chunk on the sending side (counted)', () => {
  for (const { kind, bound, make } of SOURCES) {
    void test(`a 16 MiB upload from ${kind} creates at most ${bound} promises + nextTicks per 64 KiB chunk`, { timeout: 30_000 }, async (t) => {
      const dir = mkdtempSync(path.join(tmpdir(), 'gridwire-hops-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      writeFileSync(path.join(dir, 'body'), Buffer.alloc(TOTAL, 0x5a));
      const bulk = (await receiver(t)).client(Bulk);
      await bulk.put({ name: 'warm-up' }, make(dir) as AsyncIterable<Uint8Array>); // the JIT and the windows settle
      let bytes = 0;
      const hops = await hopsPerChunk(async () => {
        bytes = (await bulk.put({ name: 'counted' }, make(dir) as AsyncIterable<Uint8Array>)).bytes;
      });
      assert.equal(bytes, TOTAL);
      const total = hops.promises + hops.ticks;
      t.diagnostic(`${kind}: ${hops.promises.toFixed(2)} promises + ${hops.ticks.toFixed(2)} ticks per chunk`);
      assert.ok(total <= bound, `${kind}: ${hops.promises.toFixed(2)} promises + ${hops.ticks.toFixed(2)} nextTicks = ${total.toFixed(2)} per chunk (bound ${bound})`);
    });
  }
});

void describe('bulk sources: one Uint8Array', () => {
  void test('a 48 MiB Uint8Array body (past the 32 MiB send queue budget) is uploaded whole, every DATA payload a view of it', { timeout: 30_000 }, async (t) => {
    const [a, b] = createMemoryPair();
    // what the client hands its transport, frame by frame: DATA payloads of 8 KiB or more are segments of their own
    const written: Uint8Array[] = [];
    const write = a.write.bind(a);
    a.write = (chunks) => {
      written.push(...chunks);
      return write(chunks);
    };
    const impl = countingBulk();
    const server = createSession(b, 'acceptor', { services: [impl] });
    const client = createSession(a, 'dialer');
    t.after(() => {
      client.destroy();
      server.destroy();
    });
    const body = new Uint8Array(48 * MiB).fill(0x5a);
    const reply = await within(client.client(Bulk).put({ name: 'one array' }, body), 20_000, 'upload');
    assert.equal(reply.bytes, body.length);
    // every byte of the body went to the transport as (part of) a segment that is a view of `body`, not a copy
    let views = 0;
    for (const segment of written) if (segment.buffer === body.buffer) views += segment.length;
    // but for the odd frame under the writer's 8 KiB zero-copy size, copied into its slab by design (here: where the
    // request's few bytes of stream credit put a frame boundary off the 64 KiB grid)
    assert.ok(body.length - views < 64 * 1024, `${views} of ${body.length} body bytes were written as views of it`);
  });
});
