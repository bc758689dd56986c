/**
 * A reader that goes away early (`gridwire ping ADDR | head -1`): the command stops quietly — no unhandled EPIPE, no
 * stack trace on stderr — as it does for ^C.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { listen } from '../../src/index.js';
import { CLI_MAIN } from '../fixtures/cli.js';

void test('gridwire ping whose stdout is closed after the first line stops without an EPIPE crash', { timeout: 30_000 }, async (t) => {
  const server = await listen('tcp://127.0.0.1:0', { services: [], log: () => {} });
  t.after(() => server.close());
  const child = spawn(process.execPath, ['--import', 'tsx', CLI_MAIN, 'ping', server.url, '--count', '0', '--interval', '20ms'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  // like `head -1`: read the first chunk, then close our end of the pipe
  await once(child.stdout, 'data');
  child.stdout.destroy();
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.doesNotMatch(stderr, /EPIPE|Unhandled|at .*\.js:\d+/, `a quiet stop, stderr: ${stderr}`);
  assert.equal(code, 130, `stopped as for ^C (stderr: ${stderr})`);
});
