/**
 * fileMembership (src/mesh/membership/file-membership.ts): a JSON object of name -> address, re-read when its directory
 * says it changed (in place or replaced by a rename, as editors and `mv` do) and by polling (a directory that appears
 * later); a half-written, invalid, missing or oversized file is a failed read; stop() leaves no watcher or timer.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';

import { fileMembership, type FileMembership } from '../../src/index.js';
import type { MembershipSink } from '../../src/mesh/membership/membership.js';
import { MAX_MEMBERSHIP_FILE_BYTES } from '../../src/mesh/membership/file-membership.js';
import { trackTimers, until } from '../helpers.js';

class RecordingSink implements MembershipSink {
  readonly scheme = 'tcp';
  readonly answers: Array<Record<string, string>> = [];
  readonly failures: string[] = [];
  update(peers: Iterable<readonly [string, string]>): void {
    this.answers.push(Object.fromEntries(peers));
  }
  fail(error: Error): void {
    this.failures.push(error.message);
  }
  warn(): void {}
  get events(): number {
    return this.answers.length + this.failures.length;
  }
}

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gw-membership-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A started source on `path` (polling every `intervalMs`), stopped after the test, its first read done. */
async function watched(t: TestContext, path: string, intervalMs = 60_000): Promise<{ source: FileMembership; sink: RecordingSink }> {
  const source = fileMembership({ path, intervalMs });
  t.after(() => source.stop());
  const sink = new RecordingSink();
  source.start(sink);
  await until(() => sink.events > 0, 2_000, 'the first read');
  return { source, sink };
}

/** Writes `content` to a temporary file beside `path` and renames it over `path`, as editors and `mv` do. */
async function replace(path: string, content: string): Promise<void> {
  await writeFile(`${path}.tmp`, content);
  await rename(`${path}.tmp`, path);
}

void describe('fileMembership: reading and watching', () => {
  void test('the JSON object is the set; a change by rename (mv, editors) is seen through the watch, long before the next poll', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'peers.json');
    await writeFile(path, JSON.stringify({ n2: 'tcp://10.0.0.2:7001', n3: 'tcp://10.0.0.3:7001' }));
    const { source, sink } = await watched(t, path);
    assert.equal(source.description, `file ${path}`);
    assert.deepEqual(sink.answers.at(-1), { n2: 'tcp://10.0.0.2:7001', n3: 'tcp://10.0.0.3:7001' });
    await replace(path, JSON.stringify({ n2: 'tcp://10.0.0.2:7001', n4: 'tcp://10.0.0.4:7001' }));
    await until(() => sink.answers.at(-1)?.n4 !== undefined, 2_000, 'the renamed file read (the poll is 60 s away)');
    // and again: the watch is on the directory, so the new file is watched as the old one was
    await replace(path, JSON.stringify({ n5: 'tcp://10.0.0.5:7001' }));
    await until(() => sink.answers.at(-1)?.n5 !== undefined, 2_000, 'the second rename read');
  });

  void test('a change in place (truncate and write) is seen too', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'peers.json');
    await writeFile(path, '{}');
    const { sink } = await watched(t, path);
    await writeFile(path, JSON.stringify({ n2: 'tcp://10.0.0.2:7001' }));
    await until(() => sink.answers.at(-1)?.n2 !== undefined, 2_000, 'the rewritten file read');
  });

  void test('polling backs the watch: a file in a directory that does not exist yet is read once it appears', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'later', 'peers.json');
    const { sink } = await watched(t, path, 1_000);
    assert.equal(sink.failures.length, 1, 'missing: a failed read');
    await mkdir(join(dir, 'later'));
    await writeFile(path, JSON.stringify({ n2: 'tcp://10.0.0.2:7001' }));
    await until(() => sink.answers.at(-1)?.n2 !== undefined, 3_000, 'the file read by the next poll');
  });

  void test('a file rewritten constantly is read at most once a second, not back to back', { timeout: 10_000 }, async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'peers.json');
    await writeFile(path, '{}');
    const { sink } = await watched(t, path);
    const until = performance.now() + 1_500;
    for (let i = 0; performance.now() < until; i++) {
      await writeFile(path, JSON.stringify({ n2: `tcp://10.0.0.2:${7000 + i}` }));
      await new Promise((resolve) => setTimeout(resolve, 30)); // past the watch's settling, so each change is read
    }
    assert.ok(sink.events >= 2, 'the changes are read');
    assert.ok(sink.events <= 3, `${sink.events} reads in 1.5 s`);
  });

  void test('an unchanged file is answered again at each read (a missing peer is removed only at an answer)', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'peers.json');
    await writeFile(path, JSON.stringify({ n2: 'tcp://10.0.0.2:7001' }));
    const { source, sink } = await watched(t, path);
    await source.refresh();
    await source.refresh();
    assert.equal(sink.answers.length, 3);
    assert.deepEqual(new Set(sink.answers.map((a) => JSON.stringify(a))).size, 1);
  });
});

void describe('fileMembership: files that are not a set', () => {
  for (const [what, content] of [
    ['half-written JSON', '{"n2": "tcp://10.0.0.2:7001", "n3": "tcp://10.0'],
    ['an empty file (truncated, not yet written)', ''],
    ['a JSON array', '[["n2", "tcp://10.0.0.2:7001"]]'],
    ['null', 'null'],
  ] as const) {
    void test(`${what}: a failed read, no answer (the mesh keeps the last good set)`, async (t) => {
      const dir = await tempDir(t);
      const path = join(dir, 'peers.json');
      await writeFile(path, JSON.stringify({ n2: 'tcp://10.0.0.2:7001' }));
      const { source, sink } = await watched(t, path);
      await writeFile(path, content);
      await source.refresh();
      assert.equal(sink.answers.length, 1, `answers: ${JSON.stringify(sink.answers)}`);
      assert.ok(sink.failures.length >= 1);
      assert.match(sink.failures.at(-1)!, new RegExp(path.replace(/[.]/g, '\\.')));
    });
  }

  void test('a FIFO is refused as a failed read, never opened for a read that blocks a thread for ever', { skip: process.platform === 'win32' ? 'no FIFOs' : false }, async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'peers.json');
    execFileSync('mkfifo', [path]);
    t.after(() => {
      // had a read opened it (and blocked a thread-pool thread waiting for a writer), a writer that comes and goes frees it
      try {
        closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        // no reader: nothing blocked
      }
    });
    const source = fileMembership({ path, intervalMs: 60_000 });
    t.after(() => source.stop());
    const sink = new RecordingSink();
    source.start(sink);
    await until(() => sink.events > 0, 2_000, 'the read to fail');
    assert.deepEqual(sink.answers, []);
    assert.match(sink.failures[0]!, /not a regular file \(a FIFO\)/);
  });

  void test('a directory is refused as a failed read that says so', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'peers.json');
    await mkdir(path);
    const { sink } = await watched(t, path);
    assert.deepEqual(sink.answers, []);
    assert.match(sink.failures[0]!, /not a regular file \(a directory\)/);
  });

  void test(`a file over ${MAX_MEMBERSHIP_FILE_BYTES} bytes is refused without being read whole`, async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'peers.json');
    await writeFile(path, `{"n2": "${'x'.repeat(MAX_MEMBERSHIP_FILE_BYTES)}"}`);
    const { sink } = await watched(t, path);
    assert.deepEqual(sink.answers, []);
    assert.match(sink.failures[0]!, /larger than 1048576 bytes/);
  });
});

void describe('fileMembership: stop', () => {
  void test('stop() closes the watcher and clears every timer; a change after it is not read', async (t) => {
    const timers = trackTimers();
    t.after(() => timers.stop());
    const dir = await tempDir(t);
    const path = join(dir, 'peers.json');
    await writeFile(path, '{}');
    const { source, sink } = await watched(t, path, 1_000);
    await writeFile(path, JSON.stringify({ n2: 'tcp://10.0.0.2:7001' })); // a settle timer may be armed now
    assert.equal(source.active, true);
    source.stop();
    assert.equal(source.active, false);
    assert.deepEqual(timers.live(), []);
    const before = sink.events;
    await replace(path, JSON.stringify({ n3: 'tcp://10.0.0.3:7001' }));
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    assert.equal(sink.events, before);
    assert.ok(!process.getActiveResourcesInfo().includes('FSEventWrap'), `resources: ${process.getActiveResourcesInfo().join(', ')}`);
  });
});
