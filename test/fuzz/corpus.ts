/**
 * The regression corpus: test/corpus/<target>/<hash>.bin holds one input in its target's corpus form (the bytes its
 * check takes), and <hash>.txt beside it says what it is, how it was found and what it broke. `npm run fuzz` adds a
 * file for every failing input; test/fuzz/corpus.test.ts replays them all in `npm test`.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { hashOf, type TargetName } from './harness.js';
import { isTargetName } from './targets.js';

export const CORPUS_DIR = fileURLToPath(new URL('../corpus/', import.meta.url));

export interface CorpusEntry {
  target: TargetName;
  /** `<target>/<hash>.bin`, relative to the corpus folder. */
  name: string;
  input: Uint8Array;
  /** The .txt beside it ('' when there is none). */
  notes: string;
}

/** Every .bin of every target folder, in name order. */
export function readCorpus(root = CORPUS_DIR): CorpusEntry[] {
  if (!existsSync(root)) return [];
  const entries: CorpusEntry[] = [];
  for (const target of readdirSync(root).sort()) {
    if (!isTargetName(target)) continue;
    for (const file of readdirSync(path.join(root, target)).sort()) {
      if (!file.endsWith('.bin')) continue;
      const full = path.join(root, target, file);
      const txt = full.replace(/\.bin$/, '.txt');
      entries.push({
        target,
        name: `${target}/${file}`,
        input: new Uint8Array(readFileSync(full)),
        notes: existsSync(txt) ? readFileSync(txt, 'utf8') : '',
      });
    }
  }
  return entries;
}

/** Writes `input` as test/corpus/<target>/<hash>.bin with its notes; returns its path, and whether it was new. */
export function saveToCorpus(target: TargetName, input: Uint8Array, notes: string, root = CORPUS_DIR): { file: string; added: boolean } {
  const dir = path.join(root, target);
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${hashOf(input)}.bin`);
  if (existsSync(file)) return { file, added: false };
  writeFileSync(file, input);
  writeFileSync(file.replace(/\.bin$/, '.txt'), notes.endsWith('\n') ? notes : `${notes}\n`);
  return { file, added: true };
}
