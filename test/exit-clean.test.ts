/**
 * Graceful shutdown leaves nothing behind: after mesh.stop(), channel.close() and server.close(), with calls in flight
 * when they start, a process exits on its own (no process.exit), so no timer, socket or listener was left open.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { within } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/exit-clean.ts', import.meta.url));

void test('after mesh.stop(), channel.close() and server.close() with calls in flight, the process exits on its own', { timeout: 20_000 }, async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.once('exit', (code) => resolve({ code, at: performance.now() })));
  let stoppedAt = 0;
  await within(
    new Promise<void>((resolve) => child.stdout.on('data', () => stdout.includes('stopped') && ((stoppedAt ||= performance.now()), resolve()))),
    15_000,
    `the fixture to stop everything (stderr: ${stderr})`,
  );
  assert.match(stdout, /stopped \["fulfilled","fulfilled","fulfilled"\]/, 'the calls in flight finished within the grace');
  const { code, at } = await within(exited, 3000, 'the process to exit on its own after shutting down (something kept it alive)');
  assert.equal(code, 0, `exit code (stderr: ${stderr})`);
  t.diagnostic(`exited ${(at - stoppedAt).toFixed(0)} ms after "stopped"`);
});
