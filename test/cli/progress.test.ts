/**
 * The progress board: in place on a TTY (cursor up over the last draw, at most every ttyIntervalMs), plain lines
 * elsewhere (one per bar per plainIntervalMs and one when it ends), the numbers (MiB, %, MiB/s, ETA), and a timer that
 * never keeps the process alive and is gone after stop().
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { ProgressBoard } from '../../src/cli/progress.js';

function sink(tty: boolean): Writable & { isTTY: boolean; columns: number; text: () => string } {
  let text = '';
  const out = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return Object.assign(out, { isTTY: tty, columns: 100, text: () => text });
}

const MiB = 2 ** 20;

void describe('ProgressBoard', () => {
  void it('plain (not a TTY): a line per bar with bytes, percent, MiB/s and ETA, and a last one when it ends', () => {
    let now = 0;
    const out = sink(false);
    const board = new ProgressBoard(out, { now: () => now, plainIntervalMs: 2000 });
    const bar = board.bar('to B', 100 * MiB);
    for (let s = 1; s <= 4; s++) {
      now = s * 1000;
      bar.update(s * 10 * MiB);
      board.draw();
    }
    const lines = out.text().trim().split('\n');
    assert.equal(lines.length, 2, `one line per 2 s: ${out.text()}`);
    assert.match(lines[1]!, /^to B\s+30%\s+30\/100 MiB\s+10\.0 MiB\/s\s+ETA 7s$/);
    bar.finish('sha256 ok');
    const last = out.text().trim().split('\n').at(-1)!;
    assert.match(last, /^to B\s+40%\s+40\/100 MiB\s+10\.0 MiB\/s\s+done\s+sha256 ok$/);
    assert.ok(!out.text().includes('\x1b'), 'no escape codes outside a TTY');
    board.stop();
  });

  void it('TTY: every bar redrawn in place (cursor up over the previous draw); nothing written after stop()', () => {
    let now = 0;
    const out = sink(true);
    const board = new ProgressBoard(out, { now: () => now });
    const b = board.bar('to B', 10 * MiB);
    const c = board.bar('to C');
    now = 1000;
    b.update(5 * MiB);
    c.update(3 * MiB);
    board.draw();
    board.draw();
    const text = out.text();
    assert.equal(text.split('\x1b[2A').length - 1, 1, 'the second draw moves up over the two lines of the first');
    assert.match(text, /to B \[#+\.+\]\s+50%\s+5\.0\/10 MiB/);
    assert.match(text, /to C\s+3\.0 MiB/, 'a bar without a total shows bytes only');
    board.stop();
    const after = out.text().length;
    board.draw();
    b.update(6 * MiB);
    assert.equal(out.text().length, after);
  });

  void it('its timer does not keep a process alive, started or stopped', async () => {
    const script = `
      import { ProgressBoard } from ${JSON.stringify(fileURLToPath(new URL('../../src/cli/progress.ts', import.meta.url)))};
      const board = new ProgressBoard(process.stderr, { tty: true });
      board.bar('x', 10).update(5);
      setTimeout(() => process.stdout.write('exiting'), 50);
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const code = await new Promise((resolve) => child.once('exit', (c, signal) => resolve(c ?? signal)));
    clearTimeout(timer);
    assert.equal(code, 0, 'the process exited on its own with a board never stopped');
    assert.equal(out, 'exiting');
  });
});
