/**
 * The regression corpus (test/corpus/<target>/*.bin, see corpus.ts): every input `npm run fuzz` kept, and the seeds
 * written by hand, replayed against its target. Each once failed or is known to be interesting; all must pass now.
 */
import { describe, test } from 'node:test';

import { readCorpus } from './corpus.js';
import { TARGETS } from './targets.js';

const ID = { decoder: 'T-F1', payloads: 'T-F1', msgpack: 'T-F1', session: 'T-F2' } as const;

void describe('fuzz corpus', () => {
  for (const entry of readCorpus()) {
    const what = entry.notes.split('\n').find((l) => l.startsWith('what: ')) ?? entry.notes.split('\n')[0] ?? '';
    void test(`${ID[entry.target]} corpus ${entry.name}${what === '' ? '' : ` (${what.replace(/^what: /, '')})`}`, async () => {
      await TARGETS[entry.target].check(entry.input);
    });
  }
});
