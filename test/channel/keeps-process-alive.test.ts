/**
 * A channel, or a Mesh without `listen`, keeps its process alive while it redials: an agent whose controller went
 * away keeps trying until it is closed, instead of exiting 0 silently (its redial timer used to be unref'd). Once
 * closed or stopped, nothing it made keeps the process alive.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test, type TestContext } from 'node:test';
import { sleep, within } from '../helpers.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/dial-dead-address.ts', import.meta.url));
/** How long a process with nothing but a redialing channel must stay up. */
const ALIVE_FOR_MS = 1_500;

interface Child {
  readonly running: boolean;
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves once stdout holds `line`. */
  printed(line: string): Promise<void>;
  exited: Promise<number | null>;
}

function spawnFixture(t: TestContext, mode: string): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  const wakers = new Set<() => void>();
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
    for (const wake of wakers) wake();
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    get running() {
      return child.exitCode === null && child.signalCode === null;
    },
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited,
    printed: (line) =>
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (stdout.split('\n').includes(line)) {
            wakers.delete(check);
            resolve();
          }
        };
        wakers.add(check);
        check();
        void exited.then(() => {
          wakers.delete(check);
          if (!stdout.split('\n').includes(line)) reject(new Error(`the fixture exited before printing ${line} (stdout: ${stdout}; stderr: ${stderr})`));
        });
      }),
  };
}

for (const mode of ['channel', 'mesh']) {
  const what = mode === 'channel' ? 'a channel' : 'a Mesh without listen';

  void test(`${what} to a dead address keeps its process alive and redialing until closed`, { timeout: 20_000 }, async (t) => {
    const child = spawnFixture(t, mode);
    await within(child.printed('opened'), 10_000, 'the fixture to start');
    const startedAt = performance.now();
    const early = await Promise.race([child.exited.then((code) => `exited with code ${code}`), sleep(ALIVE_FOR_MS).then(() => undefined)]);
    assert.equal(early, undefined, `the process must stay alive for ${ALIVE_FOR_MS} ms, but it ${early} after ${(performance.now() - startedAt).toFixed(0)} ms (stderr: ${child.stderr})`);
    assert.ok(child.running);
    const redials = child.stdout.split('\n').filter((line) => line === 'dialing').length;
    assert.ok(redials >= 2, `it must keep redialing while alive (saw ${redials} dials)`);
  });

  void test(`${what} closed after a moment lets its process exit on its own`, { timeout: 20_000 }, async (t) => {
    const child = spawnFixture(t, `${mode}-${mode === 'channel' ? 'close' : 'stop'}`);
    await within(child.printed('closed'), 10_000, 'the fixture to close');
    const code = await within(child.exited, 3_000, 'the process to exit on its own after closing (something kept it alive)');
    assert.equal(code, 0, `exit code (stderr: ${child.stderr})`);
  });
}
