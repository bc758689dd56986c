/**
 * The receiver dies (SIGKILL) in the middle of a `send -` from stdin and comes back on the same address and
 * directory: it re-verifies its `.part` from disk, the sender redials and resumes from there with the window it kept
 * in memory (stdin is never read twice), and the file arrives whole. What the demo's --kill does, with the CLI.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';

import { runGridwire } from '../fixtures/cli.js';
import { startServe, tempDir } from '../fixtures/transfer-serve.js';

const CHUNK = 256 * 1024;

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

async function stateLines(dir: string, name: string): Promise<number> {
  const text = await readFile(join(dir, `${name}.part.state`), 'utf8').catch(() => '');
  return Math.max(0, text.split('\n').length - 2);
}

void describe('gridwire send -: the receiver killed and restarted', { timeout: 40_000 }, () => {
  void it('resumes from the restarted receiver\'s verified prefix, re-sending at most a window', async (t) => {
    const dir = await tempDir(t, 'gw-restart-');
    const listen = `tcp://127.0.0.1:${await freePort()}`;
    let serve = await startServe(t, [], { dir, listen });
    const data = randomBytes(32 * CHUNK);
    // stdin at about 10 MiB/s: slow enough to kill the receiver in the middle
    const stdin = Readable.from((async function* () {
      for (let at = 0; at < data.length; at += 64 * 1024) {
        yield data.subarray(at, at + 64 * 1024);
        await new Promise((resolve) => setTimeout(resolve, 6));
      }
    })());
    const sending = runGridwire(['send', '-', listen, 'r.bin', '--json', '--chunk-size', '256KiB', '--retry-for', '15s'], { stdin, timeoutMs: 30_000 });
    const deadline = Date.now() + 15_000;
    while (await stateLines(dir, 'r.bin') < 8) {
      assert.ok(Date.now() < deadline, 'the receiver verified 8 chunks within 15 s');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    serve.child.kill('SIGKILL');
    await new Promise((resolve) => serve.child.once('exit', resolve));
    const kept = await stateLines(dir, 'r.bin');
    serve = await startServe(t, [], { dir, listen });
    const result = await sending;
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout) as { ok: boolean; sha256: string; cuts: number; resentBytes: number };
    assert.equal(summary.ok, true);
    assert.equal(summary.sha256, createHash('sha256').update(data).digest('hex'));
    assert.ok(summary.cuts >= 1, result.stderr);
    assert.ok(summary.resentBytes <= 4 * CHUNK, `resent ${summary.resentBytes} bytes: more than one window`);
    assert.deepEqual(await readFile(join(dir, 'r.bin')), data);
    assert.match(serve.stderr(), /"r\.bin" from "gridwire-cli": resumed at (\d+)/);
    const resumedAt = Number(/resumed at (\d+)/.exec(serve.stderr())![1]);
    assert.ok(resumedAt >= kept * CHUNK, `resumed at ${resumedAt}, the killed receiver had ${kept} chunks on disk`);
  });
});
