/**
 * Runs an example the way its `npm run example:<name>` script does (`node --import tsx examples/<name>/main.ts`), in
 * a process group of its own, bounded in time: resolves with its exit code and output. The whole group (the example
 * and the processes it forked) is killed when the run ends, times out or the test fails, so no node is left behind.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ExampleRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stdout and stderr interleaved as they came. */
  output: string;
  timedOut: boolean;
}

export function runExample(name: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<ExampleRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', `examples/${name}/main.ts`], {
    cwd: ROOT,
    detached: true, // its own process group: one kill reaches the children it forks
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr.on('data', (b: Buffer) => (output += b.toString()));
  let timedOut = false;
  const killGroup = (): void => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // the group is already gone
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, options.timeoutMs);
  options.signal?.addEventListener('abort', killGroup, { once: true });
  return new Promise((resolve, reject) => {
    child.once('error', (error) => {
      clearTimeout(timer);
      killGroup();
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      killGroup(); // children the example failed to stop
      resolve({ code, signal, output, timedOut });
    });
  });
}

/** The lines of `output` that contain `text`. */
export function linesWith(output: string, text: string | RegExp): string[] {
  return output.split('\n').filter((line) => (typeof text === 'string' ? line.includes(text) : text.test(line)));
}
