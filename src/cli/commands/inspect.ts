/** `gridwire inspect`: not built yet (issue 13). */
import type { CliCommand } from '../command.js';
import { EXIT } from '../exit-codes.js';

export const command: CliCommand = {
  name: 'inspect',
  summary: '(not built yet)',
  usage: 'usage: gridwire inspect (not built yet)',
  run(_args, io) {
    io.stderr.write('gridwire: inspect is not built yet\n');
    return Promise.resolve(EXIT.FAILED);
  },
};
