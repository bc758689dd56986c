/** `gridwire send`: not built yet (issue 13). */
import type { CliCommand } from '../command.js';
import { EXIT } from '../exit-codes.js';

export const command: CliCommand = {
  name: 'send',
  summary: '(not built yet)',
  usage: 'usage: gridwire send (not built yet)',
  run(_args, io) {
    io.stderr.write('gridwire: send is not built yet\n');
    return Promise.resolve(EXIT.FAILED);
  },
};
