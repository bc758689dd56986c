/**
 * Resume across real cuts: a TCP proxy between `gridwire send`/`recv` and `gridwire serve` cuts the connection after
 * a number of bytes, twice; the transfer redials, resumes from the receiver's verified offset, ends with the right
 * digest and sends again no more than one window (4 chunks) per cut, as the --json summary's resentBytes (counted
 * by the sender) says. A cut that does not heal within --retry-for exits 3.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';

import { runGridwire } from '../fixtures/cli.js';
import { startTcpProxy } from '../fixtures/tcp-proxy.js';
import { startServe, tempDir } from '../fixtures/transfer-serve.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 256 * KiB;
const WINDOW_BYTES = 4 * CHUNK;

interface Summary {
  ok: boolean;
  bytes: number;
  sha256: string;
  cuts: number;
  resentBytes: number;
}

/**
 * Forwards both ways; connection number i (0-based) is cut once `limits[i]` bytes went in the `direction` counted.
 * Connections past the list pass untouched, unless `refuseAfter`: then they are closed at once.
 */
function cutter(limits: number[], direction: 'up' | 'down', refuseAfter = false) {
  let connections = 0;
  return (client: Socket, upstream: Socket): void => {
    const limit = limits[connections++];
    if (limit === undefined && refuseAfter) {
      client.destroy();
      upstream.destroy();
      return;
    }
    let bytes = 0;
    const counted = direction === 'up' ? client : upstream;
    if (limit !== undefined) {
      counted.on('data', (b: Buffer) => {
        bytes += b.length;
        if (bytes >= limit) {
          client.destroy();
          upstream.destroy();
        }
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  };
}

void describe('gridwire send/recv: resume after cuts', { timeout: 60_000 }, () => {
  void it('send: cut twice, ends with the right digest, re-sends at most one window per cut', async (t) => {
    const serve = await startServe(t);
    const work = await tempDir(t);
    const data = randomBytes(6 * MiB + 1000);
    await writeFile(join(work, 'data.bin'), data);
    const proxy = await startTcpProxy(t, serve.url, cutter([1.5 * MiB, 2 * MiB], 'up'));
    const result = await runGridwire(['send', join(work, 'data.bin'), proxy, 'cut.bin', '--json', '--chunk-size', '256KiB', '--retry-for', '10s'], { timeoutMs: 20_000 });
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout) as Summary;
    assert.equal(summary.ok, true);
    assert.equal(summary.sha256, createHash('sha256').update(data).digest('hex'));
    assert.equal(summary.cuts, 2, result.stderr);
    assert.ok(summary.resentBytes > 0, 'a cut mid-window does send something again');
    assert.ok(summary.resentBytes <= 2 * WINDOW_BYTES, `resent ${summary.resentBytes} bytes: more than one window (${WINDOW_BYTES}) per cut`);
    assert.match(result.stderr, /transfer cut at .* redialing/);
    assert.match(result.stderr, /resumed at/);
    assert.deepEqual(await readFile(join(serve.dir, 'cut.bin')), data);
    assert.match(serve.stderr(), /"cut\.bin" from "gridwire-cli": resumed at \d+/);
  });

  void it('recv -o FILE: cut twice, resumes from its verified offset, ends with the right digest', async (t) => {
    const serve = await startServe(t);
    const work = await tempDir(t);
    const data = randomBytes(6 * MiB + 5);
    await writeFile(join(serve.dir, 'down.bin'), data);
    const proxy = await startTcpProxy(t, serve.url, cutter([1.5 * MiB, 2 * MiB], 'down'));
    const out = join(work, 'down.bin');
    const result = await runGridwire(['recv', proxy, 'down.bin', '-o', out, '--json', '--chunk-size', '256KiB', '--retry-for', '10s'], { timeoutMs: 20_000 });
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout) as Summary;
    assert.equal(summary.ok, true);
    assert.equal(summary.cuts, 2);
    assert.deepEqual(await readFile(out), data);
  });

  void it('a cut that does not heal within --retry-for exits 3 and keeps the verified prefix for a later resume', async (t) => {
    const serve = await startServe(t);
    const work = await tempDir(t);
    const data = randomBytes(4 * MiB);
    await writeFile(join(work, 'data.bin'), data);
    const proxy = await startTcpProxy(t, serve.url, cutter([1.5 * MiB], 'up', true));
    const result = await runGridwire(['send', join(work, 'data.bin'), proxy, 'stuck.bin', '--chunk-size', '256KiB', '--retry-for', '1s'], { timeoutMs: 20_000 });
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /gave up after 1 s without progress \(--retry-for\)/);

    // the receiver kept what it verified: a new send (a new process) resumes there instead of starting over
    const again = await runGridwire(['send', join(work, 'data.bin'), serve.url, 'stuck.bin', '--json', '--chunk-size', '256KiB'], { timeoutMs: 20_000 });
    assert.equal(again.code, 0, again.stderr);
    const summary = JSON.parse(again.stdout) as Summary & { resumedFrom: number };
    assert.ok(summary.resumedFrom > 0, `resumed from ${summary.resumedFrom}`);
    assert.equal(summary.resumedFrom % CHUNK, 0);
    assert.deepEqual(await readFile(join(serve.dir, 'stuck.bin')), data);
  });
});
