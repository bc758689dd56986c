/**
 * The API reference stays buildable: TypeDoc, with the repository's typedoc.json (what `npm run docs` runs), converts
 * and validates the public entry points without writing any HTML, and any warning fails the test — a public type that
 * names one the package does not export, an @internal item that leaks into a public signature, a broken {@link}.
 * Runs the TypeDoc command as a child, the way `npm run docs` does, bounded in time.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TYPEDOC_BIN = fileURLToPath(new URL('../../node_modules/typedoc/bin/typedoc', import.meta.url));
const TIMEOUT_MS = 30_000; // ~3 s alone (4 s of CPU); the bound only stops a hung run

void test('typedoc: the public API converts and validates with no warnings (--emit none)', { timeout: TIMEOUT_MS + 5_000 }, async () => {
  // --skipErrorChecking: the type check is `npm run typecheck`'s job; skipping TypeDoc's own halves the test's CPU time
  const child = spawn(process.execPath, [TYPEDOC_BIN, '--emit', 'none', '--treatWarningsAsErrors', '--skipErrorChecking'], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr.on('data', (b: Buffer) => (output += b.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (exitCode) => resolve(exitCode));
    });
    assert.doesNotMatch(output, /\[(warning|error)\]/, `TypeDoc reported problems:\n${output}`);
    assert.equal(code, 0, `TypeDoc exited with ${code}:\n${output}`);
  } finally {
    clearTimeout(timer);
    child.kill('SIGKILL');
  }
});
