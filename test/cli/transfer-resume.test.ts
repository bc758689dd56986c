/**
 * The transfer core's resume logic in process, over in-memory connections that the test cuts: a send and a download
 * resume from the receiver's verified offset and end with the right digest; a stream source (not seekable) resumes
 * from its window; a receiver whose stored prefix differs from the source gets the source again from the first
 * differing chunk (its offset is not trusted); a restarted receiver re-verifies its `.part` from disk.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';

import { createMemoryPair, createSession, type RpcSession } from '../../src/index.js';
import {
  FileStore, StreamSink, TransferServer, TransferService, fileSource, generatedSource, receiveTransfer, sendTransfer, sha256Hex,
  streamSource, type TransferSource,
} from '../../src/cli/transfer/index.js';

const CHUNK = 64 * 1024;

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gw-transfer-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A TransferServer over `dir` and a client factory: each call makes a new in-memory connection. `cutAfter(n)` destroys
 * the current connection once n more bytes of bulk data went through the server's handlers (counted in the source).
 */
async function harness(t: TestContext, dir: string) {
  let server = new TransferServer(new FileStore(dir));
  const sessions: RpcSession[] = [];
  let current: RpcSession | undefined;
  const connect = async () => {
    if (current !== undefined && current.error === undefined) return current.client(TransferService);
    const [a, b] = createMemoryPair();
    const serverSide = createSession(b, 'acceptor', { services: [server.service], log: () => {} });
    const clientSide = createSession(a, 'dialer', { log: () => {} });
    sessions.push(serverSide, clientSide);
    await Promise.all([serverSide.ready, clientSide.ready]);
    current = clientSide;
    return clientSide.client(TransferService);
  };
  t.after(async () => {
    for (const session of sessions) session.destroy();
    await server.close();
  });
  return {
    connect,
    cut() {
      current?.destroy(new Error('cut by the test'));
      current = undefined;
    },
    /** A new server over the same directory (the receiver restarted). */
    async restart() {
      this.cut();
      await server.close();
      server = new TransferServer(new FileStore(dir));
    },
  };
}

function digest(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A seekable source over `data` that calls `onRead(offset)` as it hands out each piece (to cut at a chosen point). */
function memorySource(data: Buffer, onRead?: (end: number) => void): TransferSource {
  return generatedSource(data.length, function* (offset) {
    for (let at = offset; at < data.length; at += 16 * 1024) {
      const end = Math.min(data.length, at + 16 * 1024);
      onRead?.(end);
      yield data.subarray(at, end);
    }
  });
}

void describe('transfer core: resume', { timeout: 20_000 }, () => {
  void it('sends a file in chunks and the receiver renames it into place with the same sha256', async (t) => {
    const dir = await tempDir(t);
    const data = randomBytes(CHUNK * 3 + 1234);
    const path = join(await tempDir(t), 'src.bin');
    await writeFile(path, data);
    const h = await harness(t, dir);
    const summary = await sendTransfer({ client: h.connect, source: await fileSource(path), name: 'a.bin', chunkSize: CHUNK });
    assert.equal(summary.ok, true);
    assert.equal(summary.sha256, digest(data));
    assert.equal(summary.bytes, data.length);
    assert.equal(summary.cuts, 0);
    assert.equal(summary.resentBytes, 0);
    assert.deepEqual(await readFile(join(dir, 'a.bin')), data);
    assert.deepEqual((await readdir(dir)).sort(), ['a.bin']);
  });

  void it('an empty source arrives as an empty file', async (t) => {
    const dir = await tempDir(t);
    const h = await harness(t, dir);
    const summary = await sendTransfer({ client: h.connect, source: streamSource(Readable.from([])), name: 'empty', chunkSize: CHUNK });
    assert.equal(summary.ok, true);
    assert.equal(summary.sha256, digest(Buffer.alloc(0)));
    assert.equal((await readFile(join(dir, 'empty'))).length, 0);
  });

  void it('a whole sha256 that differs leaves the file out of place (and nothing of it behind)', async (t) => {
    const dir = await tempDir(t);
    const sink = await new FileStore(dir).open('w.bin', CHUNK);
    const chunk = randomBytes(CHUNK);
    await sink.append(0, chunk, sha256Hex(chunk));
    const verdict = await sink.finish(CHUNK, digest(Buffer.from('something else')));
    assert.equal(verdict.ok, false);
    assert.equal(verdict.sha256, digest(chunk));
    assert.deepEqual(await readdir(dir), [], 'not renamed into place, .part and state removed');
    const good = await new FileStore(dir).open('w.bin', CHUNK);
    await good.append(0, chunk, sha256Hex(chunk));
    assert.equal((await good.finish(CHUNK, digest(chunk))).ok, true);
    assert.deepEqual(await readdir(dir), ['w.bin']);
  });

  void it('a send cut twice resumes from the verified offset and re-sends at most one window per cut', async (t) => {
    const dir = await tempDir(t);
    const data = randomBytes(CHUNK * 20 + 777);
    const h = await harness(t, dir);
    const cutsAt = [CHUNK * 5 + 100, CHUNK * 12 + 5000];
    const source = memorySource(data, (end) => {
      if (cutsAt.length > 0 && end >= cutsAt[0]!) {
        cutsAt.shift();
        setImmediate(() => h.cut());
      }
    });
    const events: string[] = [];
    const summary = await sendTransfer({
      client: h.connect, source, name: 'cut.bin', chunkSize: CHUNK, windowChunks: 4, initialBackoffMs: 5,
      onEvent: (event) => events.push(event.type),
    });
    assert.equal(summary.ok, true);
    assert.equal(summary.cuts, 2, `events: ${events.join(',')}`);
    assert.ok(summary.resentBytes <= 2 * 4 * CHUNK, `resent ${summary.resentBytes} bytes, more than a window per cut`);
    assert.deepEqual(await readFile(join(dir, 'cut.bin')), data);
  });

  void it('a stream source (stdin) cut mid-way resumes from the window it kept', async (t) => {
    const dir = await tempDir(t);
    const data = randomBytes(CHUNK * 12 + 5);
    const h = await harness(t, dir);
    let cut = false;
    const pieces = (async function* () {
      for (let at = 0; at < data.length; at += 8 * 1024) {
        if (!cut && at >= CHUNK * 6) {
          cut = true;
          h.cut();
        }
        yield data.subarray(at, Math.min(data.length, at + 8 * 1024));
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const summary = await sendTransfer({ client: h.connect, source: streamSource(pieces), name: 'stdin.bin', chunkSize: CHUNK, initialBackoffMs: 5 });
    assert.equal(summary.ok, true);
    assert.equal(summary.cuts, 1);
    assert.deepEqual(await readFile(join(dir, 'stdin.bin')), data);
  });

  void it('a receiver whose stored prefix differs from the source gets it again from the first differing chunk', async (t) => {
    const dir = await tempDir(t);
    const old = randomBytes(CHUNK * 6);
    const data = Buffer.from(old);
    data.fill(7, CHUNK * 3 + 10, CHUNK * 3 + 20);   // chunk 3 differs
    // the receiver holds six verified chunks of `old` (a transfer of another version, cut before its end)
    const store = new FileStore(dir);
    const sink = await store.open('v.bin', CHUNK);
    for (let i = 0; i < 6; i++) {
      const chunk = old.subarray(i * CHUNK, (i + 1) * CHUNK);
      await sink.append(i, chunk, sha256Hex(chunk));
    }
    await sink.close();
    const h = await harness(t, dir);
    const grown = Buffer.concat([data, randomBytes(CHUNK * 2)]);
    const summary = await sendTransfer({ client: h.connect, source: memorySource(grown), name: 'v.bin', chunkSize: CHUNK });
    assert.equal(summary.ok, true);
    assert.equal(summary.resumedFrom, CHUNK * 3, 'resumed at the first chunk whose hash differs, not at the receiver\'s offset');
    assert.deepEqual(await readFile(join(dir, 'v.bin')), grown);
  });

  void it('a restarted receiver re-verifies its .part from disk and keeps only the prefix that still matches', async (t) => {
    const dir = await tempDir(t);
    const data = randomBytes(CHUNK * 10);
    const h = await harness(t, dir);
    let cut = false;
    const source = memorySource(data, (end) => {
      if (!cut && end >= CHUNK * 6) {
        cut = true;
        setImmediate(() => void h.restart());
      }
    });
    // while the receiver is down, corrupt chunk 2 of its .part: it must not count chunks 2.. after the restart
    const summary = await sendTransfer({
      client: async () => {
        if (cut) {
          const part = await readFile(join(dir, 'r.bin.part')).catch(() => undefined);
          if (part !== undefined && part.length > CHUNK * 3 && part[CHUNK * 2] !== (data[CHUNK * 2]! ^ 0xff)) {
            part[CHUNK * 2] = data[CHUNK * 2]! ^ 0xff;
            await writeFile(join(dir, 'r.bin.part'), part);
          }
        }
        return h.connect();
      },
      source, name: 'r.bin', chunkSize: CHUNK, initialBackoffMs: 20,
    });
    assert.equal(summary.ok, true);
    assert.ok(summary.cuts >= 1);
    assert.ok(summary.resentBytes >= CHUNK * 3, `chunks 2.. were sent again (resent ${summary.resentBytes})`);
    assert.deepEqual(await readFile(join(dir, 'r.bin')), data);
  });

  void it('a download cut twice resumes into a FileStore and into a stream that never sees a byte twice', async (t) => {
    const dir = await tempDir(t);
    const data = randomBytes(CHUNK * 9 + 99);
    await writeFile(join(dir, 'd.bin'), data);
    const h = await harness(t, dir);
    const out = await tempDir(t);
    let verified = 0;
    const cuts = [CHUNK * 3, CHUNK * 6];
    const onProgress = ({ verified: v }: { verified: number }) => {
      verified = v;
      if (cuts.length > 0 && verified >= cuts[0]!) {
        cuts.shift();
        h.cut();
      }
    };
    const sink = await new FileStore(out).open('d.bin', CHUNK);
    const toFile = await receiveTransfer({ client: h.connect, name: 'd.bin', sink, onProgress, initialBackoffMs: 5 });
    assert.equal(toFile.ok, true);
    assert.equal(toFile.cuts, 2);
    assert.deepEqual(await readFile(join(out, 'd.bin')), data);

    cuts.push(CHUNK * 2, CHUNK * 7);
    const pipe = new PassThrough();
    const received: Buffer[] = [];
    pipe.on('data', (b: Buffer) => received.push(b));
    const toStream = await receiveTransfer({ client: h.connect, name: 'd.bin', sink: new StreamSink(pipe, CHUNK), onProgress, initialBackoffMs: 5 });
    assert.equal(toStream.ok, true);
    assert.equal(toStream.cuts, 2);
    assert.deepEqual(Buffer.concat(received), data, 'the stream got every byte once, in order');
  });
});
