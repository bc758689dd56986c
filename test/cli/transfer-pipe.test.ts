/**
 * zrepl's `zfs send | zfs recv` case with tar: `tar -c DIR | gridwire send - ADDR x`, then
 * `gridwire recv ADDR x -o - > out`: the bytes out equal the tar stream byte for byte, and the summary's digest is
 * the tar stream's.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';

import { runGridwire } from '../fixtures/cli.js';
import { startServe, tempDir } from '../fixtures/transfer-serve.js';

void describe('gridwire send - / recv -o -: a tar stream through a pipe', { timeout: 40_000 }, () => {
  void it('tar | send - ; recv -o - gives the tar stream back byte for byte', async (t) => {
    const tree = await tempDir(t);
    await mkdir(join(tree, 'a', 'b'), { recursive: true });
    await writeFile(join(tree, 'a', 'one.bin'), randomBytes(2 * 1024 * 1024 + 3));
    await writeFile(join(tree, 'a', 'b', 'two.txt'), 'hello\n'.repeat(10_000));
    await writeFile(join(tree, 'three.bin'), randomBytes(1024 * 1024));
    const serve = await startServe(t);

    const tar = spawn('tar', ['-c', '-C', tree, '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => tar.kill('SIGKILL'));
    const tarBytes: Buffer[] = [];
    const tee = new PassThrough();
    tar.stdout.on('data', (b: Buffer) => tarBytes.push(b));
    tar.stdout.pipe(tee);
    const sent = await runGridwire(['send', '-', serve.url, 'tree.tar', '--json', '--chunk-size', '512KiB'], { stdin: tee, timeoutMs: 20_000 });
    assert.equal(sent.code, 0, sent.stderr);
    const source = Buffer.concat(tarBytes);
    assert.ok(source.length > 3 * 1024 * 1024, `a tar of a few MiB (${source.length} bytes)`);
    const summary = JSON.parse(sent.stdout) as { ok: boolean; bytes: number; sha256: string };
    assert.equal(summary.bytes, source.length);
    assert.equal(summary.sha256, createHash('sha256').update(source).digest('hex'));

    const received = await runGridwire(['recv', serve.url, 'tree.tar', '-o', '-', '--chunk-size', '512KiB'], { timeoutMs: 20_000 });
    assert.equal(received.code, 0, received.stderr);
    assert.ok(received.stdoutBytes.equals(source), 'recv -o - wrote exactly the tar stream');

    // and the stream is a tar that lists the tree
    const list = spawn('tar', ['-t'], { stdio: ['pipe', 'pipe', 'inherit'] });
    t.after(() => list.kill('SIGKILL'));
    let names = '';
    list.stdout.on('data', (b: Buffer) => (names += b.toString()));
    list.stdin.end(received.stdoutBytes);
    await new Promise((resolve) => list.once('close', resolve));
    assert.match(names, /a\/b\/two\.txt/);
    assert.match(names, /three\.bin/);
  });

  void it('recv -o - --json: stdout is the data byte for byte, the JSON summary (or error) is on stderr', async (t) => {
    const serve = await startServe(t);
    const source = randomBytes(1024 * 1024 + 17);
    await writeFile(join(serve.dir, 'blob.bin'), source);
    const received = await runGridwire(['recv', serve.url, 'blob.bin', '-o', '-', '--json', '-q'], { timeoutMs: 20_000 });
    assert.equal(received.code, 0, received.stderr);
    assert.ok(received.stdoutBytes.equals(source), `stdout is the file only (${received.stdoutBytes.length} bytes for ${source.length})`);
    const summary = JSON.parse(received.stderr.trim().split('\n').at(-1)!) as { ok: boolean; bytes: number };
    assert.deepEqual([summary.ok, summary.bytes], [true, source.length]);

    const missing = await runGridwire(['recv', serve.url, 'nothing-here', '-o', '-', '--json', '-q'], { timeoutMs: 20_000 });
    assert.notEqual(missing.code, 0);
    assert.equal(missing.stdoutBytes.length, 0, 'no error object on stdout');
    assert.match(missing.stderr, /"ok":false/);
  });
});
