/**
 * `gridwire serve`, `send` and `recv` as a user runs them (child processes): the happy paths (a file there and back,
 * stdout, --json summaries, a graceful stop on SIGTERM) and every bad input with its exit code and message.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { createMemoryPair, createSession, RpcError, Status } from '../../src/index.js';
import { FileStore, TransferServer, TransferService } from '../../src/cli/transfer/index.js';
import { runGridwire } from '../fixtures/cli.js';
import { startServe, tempDir } from '../fixtures/transfer-serve.js';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

interface Summary {
  ok: boolean;
  name: string;
  bytes: number;
  sha256: string;
  cuts: number;
  resentBytes: number;
  resumedFrom: number;
  exitCode: number;
}

void describe('gridwire serve, send, recv: happy paths', { timeout: 60_000 }, () => {
  void it('send FILE stores it under NAME; recv -o FILE and recv -o - give it back; serve stops with 0 on SIGTERM', async (t) => {
    const serve = await startServe(t);
    const work = await tempDir(t);
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const path = join(work, 'data.bin');
    await writeFile(path, data);

    const sent = await runGridwire(['send', path, serve.url, 'copy.bin', '--json', '--chunk-size', '1MiB'], { timeoutMs: 20_000 });
    assert.equal(sent.code, 0, sent.stderr);
    const summary = JSON.parse(sent.stdout) as Summary;
    assert.equal(summary.ok, true);
    assert.equal(summary.bytes, data.length);
    assert.equal(summary.sha256, sha256(data));
    assert.equal(summary.cuts, 0);
    assert.deepEqual(await readFile(join(serve.dir, 'copy.bin')), data);
    assert.deepEqual(await readdir(serve.dir), ['copy.bin'], 'no .part or state left behind');

    const out = join(work, 'back.bin');
    const received = await runGridwire(['recv', serve.url, 'copy.bin', '-o', out], { timeoutMs: 20_000 });
    assert.equal(received.code, 0, received.stderr);
    assert.match(received.stderr, /received copy\.bin: \d+ bytes .* sha256 [0-9a-f]{64} matches/);
    assert.deepEqual(await readFile(out), data);

    const piped = await runGridwire(['recv', serve.url, 'copy.bin', '-o', '-', '-q'], { timeoutMs: 20_000 });
    assert.equal(piped.code, 0, piped.stderr);
    assert.deepEqual(piped.stdoutBytes, data, 'stdout carries exactly the file');

    assert.match(serve.stderr(), /"copy\.bin" from "gridwire-cli": receiving/);
    assert.match(serve.stderr(), /"copy\.bin": done, \d+ bytes, sha256/);
    assert.equal(await serve.stop(), 0);
    assert.match(serve.stderr(), /closed/);
  });
});

void describe('gridwire serve, send, recv: bad input', { timeout: 60_000 }, () => {
  void it('send: a missing FILE, a malformed ADDR, a bad NAME and a wrong argument count exit 2 saying what is wrong', async (t) => {
    const work = await tempDir(t);
    const missing = await runGridwire(['send', join(work, 'nope.bin'), 'tcp://127.0.0.1:1', 'x'], { timeoutMs: 15_000 });
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /cannot read .*nope\.bin: no such file/);

    await writeFile(join(work, 'f'), 'x');
    const badAddress = await runGridwire(['send', join(work, 'f'), 'tcp//nowhere', 'x'], { timeoutMs: 15_000 });
    assert.equal(badAddress.code, 2, badAddress.stderr);
    assert.match(badAddress.stderr, /tcp\/\/nowhere/);

    for (const name of ['../etc/passwd', 'a/b', '..', 'x'.repeat(256), 'y.part']) {
      const bad = await runGridwire(['send', join(work, 'f'), 'tcp://127.0.0.1:1', name, '--json'], { timeoutMs: 15_000 });
      assert.equal(bad.code, 2, `${name}: ${bad.stdout}`);
      assert.match((JSON.parse(bad.stdout) as { error: string }).error, /NAME: a name/);
    }
    const count = await runGridwire(['send', join(work, 'f'), 'tcp://127.0.0.1:1'], { timeoutMs: 15_000 });
    assert.equal(count.code, 2);
    assert.match(count.stderr, /send takes FILE\|- ADDR NAME/);
    const flag = await runGridwire(['send', '--bogus', join(work, 'f'), 'tcp://127.0.0.1:1', 'x'], { timeoutMs: 15_000 });
    assert.equal(flag.code, 2);
  });

  void it('send and recv: nothing listening exits 3 saying so', async (t) => {
    const work = await tempDir(t);
    await writeFile(join(work, 'f'), 'x');
    // a port that was free a moment ago: bind one, close it, dial it
    const { createServer } = await import('node:net');
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const send = await runGridwire(['send', join(work, 'f'), `tcp://127.0.0.1:${port}`, 'x'], { timeoutMs: 15_000 });
    assert.equal(send.code, 3, send.stderr);
    assert.match(send.stderr, /cannot reach tcp:\/\/127\.0\.0\.1:\d+: .*is gridwire serve running there\?/);
    const recv = await runGridwire(['recv', `tcp://127.0.0.1:${port}`, 'x', '-o', join(work, 'out')], { timeoutMs: 15_000 });
    assert.equal(recv.code, 3, recv.stderr);
  });

  void it('a wrong token exits 4; the right one works', async (t) => {
    const work = await tempDir(t);
    await writeFile(join(work, 'token'), 'sesame\n');
    await writeFile(join(work, 'wrong'), 'open-barley\n');
    await writeFile(join(work, 'f'), 'hello');
    const serve = await startServe(t, ['--token-file', join(work, 'token')]);
    const wrong = await runGridwire(['send', join(work, 'f'), serve.url, 'x', '--token-file', join(work, 'wrong')], { timeoutMs: 15_000 });
    assert.equal(wrong.code, 4, wrong.stderr);
    assert.match(wrong.stderr, /UNAUTHENTICATED/);
    const none = await runGridwire(['recv', serve.url, 'x', '-o', '-'], { timeoutMs: 15_000 });
    assert.equal(none.code, 4, none.stderr);
    const right = await runGridwire(['send', join(work, 'f'), serve.url, 'x', '-q'], { timeoutMs: 15_000, env: { GRIDWIRE_TOKEN: 'sesame' } });
    assert.equal(right.code, 0, right.stderr);
  });

  void it('recv of a name the server does not have exits 6 (NOT_FOUND) and leaves no partial file', async (t) => {
    const serve = await startServe(t);
    const work = await tempDir(t);
    const result = await runGridwire(['recv', serve.url, 'absent.bin', '-o', join(work, 'absent.bin')], { timeoutMs: 15_000 });
    assert.equal(result.code, 6, result.stderr);
    assert.match(result.stderr, /NOT_FOUND: no file absent\.bin here/);
    assert.deepEqual(await readdir(work), []);
  });

  void it('serve: no --dir, no --listen, a malformed address, an unknown flag exit 2', async (t) => {
    const work = await tempDir(t);
    const cases: [string[], RegExp][] = [
      [['serve', '--listen', 'tcp://127.0.0.1:0'], /needs --dir/],
      [['serve', '--dir', work], /needs --listen/],
      [['serve', '--listen', 'tcp:/x', '--dir', work], /tcp:\/x/],
      [['serve', '--listen', 'tcp://127.0.0.1:0', '--dir', work, '--bogus'], /bogus/],
      [['serve', '--listen', 'tcp://127.0.0.1:0', '--dir', work, '--require-client-cert'], /needs --tls-cert/],
    ];
    for (const [args, message] of cases) {
      const result = await runGridwire(args, { timeoutMs: 15_000 });
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
  });

  void it('the server refuses a name that is not a plain file name with INVALID_ARGUMENT, whatever the client checked', async (t) => {
    const dir = await tempDir(t);
    const server = new TransferServer(new FileStore(dir));
    const [a, b] = createMemoryPair();
    const serverSide = createSession(b, 'acceptor', { services: [server.service], log: () => {} });
    const clientSide = createSession(a, 'dialer', { log: () => {} });
    t.after(async () => {
      clientSide.destroy();
      serverSide.destroy();
      await server.close();
    });
    await clientSide.ready;
    const client = clientSide.client(TransferService);
    const cases: [string, RegExp][] = [
      ['', /non-empty/], ['../x', /plain file name/], ['a/b', /plain file name/], ['..', /must not be/], ['a\0b', /NUL/],
      ['n'.repeat(256), /at most 255 bytes/], ['x.part', /must not end in \.part/],
    ];
    for (const [name, message] of cases) {
      const error = await client.status({ name, transferId: 't', chunkSize: 1 << 20, from: 0 }).then(() => undefined, (e: unknown) => e);
      assert.ok(error instanceof RpcError && error.code === Status.INVALID_ARGUMENT, `${JSON.stringify(name)}: ${String(error)}`);
      assert.match(error.rawMessage, message);
      const download = await client.stat({ name }).then(() => undefined, (e: unknown) => e);
      assert.ok(download instanceof RpcError && download.code === Status.INVALID_ARGUMENT);
    }
    assert.deepEqual(await readdir(dir), [], 'nothing was created');

    // names idle (no upload running) are let go of when more than MAX_NAMES_RECEIVING (64) are asked for
    for (let i = 0; i < 70; i++) {
      const reply = await client.status({ name: `n${i}`, transferId: 't', chunkSize: 1 << 20, from: 0 });
      assert.equal(reply.verifiedChunks, 0);
    }
  });
});
