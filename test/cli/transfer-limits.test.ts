/**
 * What a hostile peer of `gridwire serve` can make the transfer service hold or do: upload chunk buffers are bounded
 * server-wide and let go of when a commit does not come, disk hashing per call is capped and shared, names that collide
 * with the receiver's own files or carry control characters are refused, peer strings are quoted in the log, and fs
 * errors reach the peer without the server's paths.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';

import { createMemoryPair, createSession, RpcError, Status, type RpcSession } from '../../src/index.js';
import { FileStore, TransferServer, TransferService, generatedSource, sendTransfer, type TransferServerOptions } from '../../src/cli/transfer/index.js';
import { MAX_HASHED_BYTES_PER_CALL, UPLOAD_BUFFERS_PER_UPLOAD, nameProblem, quoted } from '../../src/cli/transfer/protocol.js';

const CHUNK = 64 * 1024;

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gw-transfer-limits-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function harness(t: TestContext, dir: string, options: TransferServerOptions = {}, nodeName = 'tester') {
  const server = new TransferServer(new FileStore(dir), options);
  const sessions: RpcSession[] = [];
  const [a, b] = createMemoryPair();
  const serverSide = createSession(b, 'acceptor', { services: [server.service], log: () => {} });
  const clientSide = createSession(a, 'dialer', { log: () => {}, nodeName });
  sessions.push(serverSide, clientSide);
  await Promise.all([serverSide.ready, clientSide.ready]);
  t.after(async () => {
    for (const session of sessions) session.destroy();
    await server.close();
  });
  return { server, client: clientSide.client(TransferService) };
}

/** A body that sends one chunk and then never ends (until `stop` aborts). */
async function* oneChunkThenHang(stop: AbortSignal): AsyncGenerator<Uint8Array> {
  yield Buffer.alloc(CHUNK, 7);
  await new Promise((resolve) => stop.addEventListener('abort', resolve, { once: true }));
}

async function codeOf(promise: Promise<unknown>): Promise<number | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return error instanceof RpcError ? error.code : -1;
  }
}

async function until(check: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

void describe('transfer service limits', { timeout: 20_000 }, () => {
  void it('uploads that never commit: refused RESOURCE_EXHAUSTED past the upload buffer budget, DEADLINE_EXCEEDED after the commit timeout, and the budget comes back', async (t) => {
    const perUpload = UPLOAD_BUFFERS_PER_UPLOAD * CHUNK;
    const { server, client } = await harness(t, await tempDir(t), { uploadBufferBytes: 2 * perUpload, commitTimeoutMs: 400 });
    const stop = new AbortController();
    t.after(() => stop.abort());
    const upload = (name: string): Promise<unknown> =>
      client.upload({ name, transferId: randomUUID(), chunkSize: CHUNK, offset: 0, size: null }, oneChunkThenHang(stop.signal));
    const keepAlive = setInterval(() => {}, 1000);
    t.after(() => clearInterval(keepAlive));
    const held = [codeOf(upload('a')), codeOf(upload('b'))];
    await until(() => server.uploadBufferBytesInUse === 2 * perUpload, 5000);
    const finite = client.upload({ name: 'c', transferId: randomUUID(), chunkSize: CHUNK, offset: 0, size: null }, [Buffer.alloc(CHUNK, 7)]);
    assert.equal(await codeOf(finite), Status.RESOURCE_EXHAUSTED, 'a third upload past the budget is refused');
    assert.deepEqual(await Promise.all(held), [Status.DEADLINE_EXCEEDED, Status.DEADLINE_EXCEEDED], 'uploads whose chunk got no commit fail');
    assert.equal(server.uploadBufferBytesInUse, 0, 'their buffers are given back');
    const again = codeOf(upload('d'));
    await until(() => server.uploadBufferBytesInUse === perUpload, 5000);
    assert.equal(await again, Status.DEADLINE_EXCEEDED);
  });

  void it('hashes: a call covering more than MAX_HASHED_BYTES_PER_CALL is INVALID_ARGUMENT; concurrent disk hashings share at most 2 read buffers', async (t) => {
    const dir = await tempDir(t);
    const data = randomBytes(4 * 1024 * 1024);
    await writeFile(join(dir, 'f'), data);
    const { server, client } = await harness(t, dir);
    const big = 1024 * 1024;
    assert.ok(1024 * big > MAX_HASHED_BYTES_PER_CALL);
    assert.equal(await codeOf(client.hashes({ name: 'f', transferId: '', chunkSize: big, from: 0, count: 1024 })), Status.INVALID_ARGUMENT);
    const want = Array.from({ length: 64 }, (_, i) => createHash('sha256').update(data.subarray(i * CHUNK, (i + 1) * CHUNK)).digest('hex'));
    const replies = await Promise.all(Array.from({ length: 8 }, () => client.hashes({ name: 'f', transferId: '', chunkSize: CHUNK, from: 0, count: 64 })));
    for (const reply of replies) assert.deepEqual(reply.hashes, want);
    assert.ok(server.diskHashBuffersAllocated >= 1 && server.diskHashBuffersAllocated <= 2, `${server.diskHashBuffersAllocated} read buffers for 8 concurrent calls`);
  });

  void it('a name that got no chunk leaves no .part behind once let go of (idle)', async (t) => {
    const dir = await tempDir(t);
    const { client } = await harness(t, dir, { idleMs: 100 });
    await client.status({ name: 'x', transferId: randomUUID(), chunkSize: CHUNK, from: 0 });
    assert.ok((await readdir(dir)).length > 0, 'status opened its files');
    await until(() => false, 400).catch(() => {});
    assert.deepEqual(await readdir(dir), [], 'nothing left once idle');
  });

  void it('an upload that sends past its declared size fails OUT_OF_RANGE and writes nothing past the chunk holding the size', async (t) => {
    const dir = await tempDir(t);
    const { client } = await harness(t, dir);
    const transferId = randomUUID();
    const chunks = [Buffer.alloc(CHUNK, 1), Buffer.alloc(CHUNK, 2), Buffer.alloc(CHUNK, 3)];
    const upload = codeOf(client.upload({ name: 'y', transferId, chunkSize: CHUNK, offset: 0, size: CHUNK }, chunks));
    const stop = new AbortController();
    const commits = chunks.map((chunk, index) => codeOf(client.commit({ name: 'y', transferId, index, sha256: createHash('sha256').update(chunk).digest('hex') }, { signal: stop.signal })));
    assert.equal(await upload, Status.OUT_OF_RANGE);
    stop.abort();   // the commits of chunks past the size wait for an upload that would take them (a sender cancels them)
    await Promise.all(commits);
    assert.ok((await stat(join(dir, 'y.part'))).size <= CHUNK, 'at most the declared size on disk');
  });

  void it('an upload that declares more bytes than the disk has free is RESOURCE_EXHAUSTED', async (t) => {
    const dir = await tempDir(t);
    const { client } = await harness(t, dir);
    const huge = 2 ** 52;
    assert.equal(await codeOf(client.upload({ name: 'z', transferId: randomUUID(), chunkSize: CHUNK, offset: 0, size: huge }, [])), Status.RESOURCE_EXHAUSTED);
  });

  for (const name of ['a.part.state.tmp', 'a.PART', 'a.Part.State', 'A.PART.STATE.TMP', 'line\nbreak', 'esc\u001b[2Jx', 'c1\u009bx', 'del\u007fx', 'tab\tx']) {
    void it(`names: ${quoted(name)} is refused (the receiver's own suffixes in any case, control characters), by the server too`, async (t) => {
      assert.notEqual(nameProblem(name), undefined);
      const { client } = await harness(t, await tempDir(t));
      assert.equal(await codeOf(client.status({ name, transferId: randomUUID(), chunkSize: CHUNK, from: 0 })), Status.INVALID_ARGUMENT);
    });
  }

  void it('names: plain names with dots, spaces and non-ASCII letters are still accepted', () => {
    for (const name of ['a.partial', 'report.state', 'été 2026.tar', 'part']) assert.equal(nameProblem(name), undefined, name);
  });

  void it('log lines quote the peer\'s node name and the transfer name: a node name with a newline gives one line', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'f'), 'hello');
    const lines: string[] = [];
    const { client } = await harness(t, dir, { log: (line) => lines.push(line) }, 'evil\nFORGED serve: all fine');
    const stop = new AbortController();
    t.after(() => stop.abort());
    await codeOf(client.upload({ name: 'g', transferId: randomUUID(), chunkSize: CHUNK, offset: 0, size: null }, []));
    for await (const piece of client.download({ name: 'f', transferId: randomUUID(), chunkSize: CHUNK, offset: 0 })) assert.ok(piece.length > 0);
    assert.ok(lines.length >= 2, lines.join('|'));
    for (const line of lines) {
      assert.ok(!line.includes('\n'), `one line: ${line}`);
      assert.match(line, /^"[fg]" (from|to) "evil\\nFORGED serve: all fine"/);
    }
  });

  void it('a file system error reaches the peer as a fixed message with the errno code only (no server path); the detail is logged', async (t) => {
    const parent = await tempDir(t);
    const notADirectory = join(parent, 'secret-path-file');
    await writeFile(notADirectory, 'x');
    const lines: string[] = [];
    const { client } = await harness(t, notADirectory, { log: (line) => lines.push(line) });
    const failure = await client.status({ name: 'n', transferId: randomUUID(), chunkSize: CHUNK, from: 0 }).then(() => undefined, (error: unknown) => error);
    assert.ok(failure instanceof RpcError);
    assert.equal(failure.rawMessage, 'the receiver could not write: ENOTDIR');
    assert.ok(lines.some((line) => line.includes('secret-path-file')), 'the server logs the detail');
  });

  void it('hashes of a file a finished upload wrote come from that upload\'s chunk hashes, without reading the file', async (t) => {
    const dir = await tempDir(t);
    const { server, client } = await harness(t, dir);
    const data = randomBytes(5 * CHUNK + 9);
    const summary = await sendTransfer({ client: () => Promise.resolve(client), name: 'up', source: generatedSource(data.length, () => [data]), chunkSize: CHUNK });
    assert.ok(summary.ok);
    const want = Array.from({ length: 6 }, (_, i) => createHash('sha256').update(data.subarray(i * CHUNK, (i + 1) * CHUNK)).digest('hex'));
    assert.deepEqual((await client.hashes({ name: 'up', transferId: '', chunkSize: CHUNK, from: 0, count: 64 })).hashes, want);
    assert.equal(server.diskHashBuffersAllocated, 0, 'the file was not read');
  });
});
