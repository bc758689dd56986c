/**
 * What the demo adds to the progress board: `log(line)`, an event printed above the bars (on a TTY the bars move down
 * under it and are redrawn in place after), and `footer(text)`, a line kept under the bars (on a TTY redrawn with
 * them, counted in the cursor-up of the next draw; elsewhere printed after the bars' periodic lines).
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';

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

/** The screen a VT100 shows after `text` (only what the board writes: CR, LF, cursor up, erase line). */
function screen(text: string): string[] {
  const rows = [''];
  let row = 0;
  for (let i = 0; i < text.length;) {
    const escape = new RegExp(`^${ESC}\\[(\\d*)([AK])`).exec(text.slice(i));
    if (escape) {
      if (escape[2] === 'A') row -= Number(escape[1] || 1);
      else rows[row] = '';
      i += escape[0].length;
      continue;
    }
    const ch = text[i++]!;
    if (ch === '\n') rows[++row] ??= '';
    else if (ch !== '\r') rows[row] += ch;
  }
  return rows.filter((line, n) => line !== '' || n < rows.length - 1);
}

const MiB = 2 ** 20;
const ESC = String.fromCharCode(27);

void describe('ProgressBoard log and footer', () => {
  void it('TTY: an event logged while the bars run lands above them, the bars and the footer below, each once', () => {
    let now = 0;
    const out = sink(true);
    const board = new ProgressBoard(out, { now: () => now });
    const b = board.bar('A -> B', 10 * MiB);
    const c = board.bar('A -> C', 10 * MiB);
    board.footer('calls: p50 1.0 ms');
    now = 1000;
    b.update(5 * MiB);
    c.update(2 * MiB);
    board.draw();
    board.log('[1.0 s] B killed');
    board.footer('calls: p50 2.0 ms');
    board.draw();
    board.log('[2.0 s] B restarted');
    board.stop();
    const shown = screen(out.text());
    assert.equal(shown.length, 5, shown.join('\n'));
    assert.equal(shown[0], '[1.0 s] B killed');
    assert.equal(shown[1], '[2.0 s] B restarted');
    assert.match(shown[2]!, /^A -> B \[#+\.+\]\s+50%/);
    assert.match(shown[3]!, /^A -> C \[#+\.+\]\s+20%/);
    assert.equal(shown[4], 'calls: p50 2.0 ms');
  });

  void it('plain: log prints its line at once; the footer follows the bars\' periodic lines and ends the board', () => {
    let now = 0;
    const out = sink(false);
    const board = new ProgressBoard(out, { now: () => now, plainIntervalMs: 2000 });
    const b = board.bar('A -> B', 10 * MiB);
    board.footer('calls: 3');
    board.log('an event');
    now = 2500;
    b.update(MiB);
    board.draw();
    const periodic = out.text().trim().split('\n');
    assert.ok(periodic.includes('an event'));
    assert.match(periodic.at(-2)!, /^A -> B\s+10%/);
    assert.equal(periodic.at(-1), 'calls: 3', 'the footer after the periodic line');
    board.stop();
    const lines = out.text().trim().split('\n');
    assert.ok(!out.text().includes(ESC));
    assert.equal(lines.at(-1), 'calls: 3', 'and last');
  });
});
