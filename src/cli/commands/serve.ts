/**
 * `gridwire serve --listen ADDR --dir DIR`: receives `gridwire send` transfers into DIR and serves `gridwire recv`
 * downloads from it, until SIGINT or SIGTERM, then closes gracefully (transfers in flight keep their verified prefix
 * on disk and resume when the sender comes back). One line per transfer event on stderr.
 */
import { mkdir, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { listen, type ListenOptions } from '../../endpoint/endpoints.js';
import type { CliCommand } from '../command.js';
import { UsageError } from '../command.js';
import { readFlagFile } from '../connect-flags.js';
import { EXIT } from '../exit-codes.js';
import { FileStore, TransferServer } from '../transfer/index.js';

const usage = `usage: gridwire serve --listen ADDR --dir DIR [flags]

Receives files sent with "gridwire send" into DIR, and serves the files in DIR to "gridwire recv". Names are plain
file names (no "/", "..", NUL, at most 255 bytes). A transfer in progress is kept as DIR/NAME.part with its verified
chunks' hashes in DIR/NAME.part.state, and renamed to DIR/NAME when the whole sha256 matched. Runs until SIGINT or
SIGTERM, then closes gracefully and exits 0.

  gridwire serve --listen tcp://0.0.0.0:7070 --dir /srv/incoming
  gridwire serve --listen tls://0.0.0.0:7070 --dir /srv/in --tls-cert c.pem --tls-key k.pem --tls-ca ca.pem --require-client-cert

Flags:
  --listen ADDR            tcp://HOST:PORT, tls://HOST:PORT, unix:///path, ws:// or wss:// (port 0: any free port)
  --dir DIR                the directory (created when missing)
  --tls-cert FILE          our certificate (PEM), for tls:// and wss://
  --tls-key FILE           its private key (PEM)
  --tls-ca FILE            CA certificate(s) client certificates must chain to
  --require-client-cert    mutual TLS: refuse clients without a valid certificate (needs --tls-ca)
  --token-file FILE        require this token from every client (or set GRIDWIRE_TOKEN)
  --node-name NAME         our name in the handshake (default gridwire-serve)
  --json                   print {"listening": URL, "dir": DIR} on stdout once listening`;

export const command: CliCommand = {
  name: 'serve',
  summary: 'receive files into a directory and serve them (for gridwire send and recv)',
  usage,
  async run(args, io) {
    const { values, positionals } = parseArgs({
      args,
      options: {
        listen: { type: 'string' },
        dir: { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'tls-ca': { type: 'string' },
        'require-client-cert': { type: 'boolean', default: false },
        'token-file': { type: 'string' },
        'node-name': { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length > 0) throw new UsageError(`serve takes no arguments (got ${positionals.join(' ')}); use --listen ADDR --dir DIR`);
    if (values.listen === undefined) throw new UsageError('serve needs --listen ADDR (e.g. tcp://127.0.0.1:7070)');
    if (values.dir === undefined) throw new UsageError('serve needs --dir DIR');
    const dir = values.dir;
    try {
      await mkdir(dir, { recursive: true });
      if (!(await stat(dir)).isDirectory()) throw new Error('not a directory');
    } catch (error) {
      throw new UsageError(`--dir ${dir}: ${(error as Error).message}`);
    }
    const log = (line: string): void => {
      io.stderr.write(`${new Date().toISOString()} ${line}\n`);
    };
    const transfers = new TransferServer(new FileStore(dir), { log });
    const options: ListenOptions = {
      services: [transfers.service],
      nodeName: values['node-name'] ?? 'gridwire-serve',
      log: (level, message) => { if (level === 'warn') log(`warning: ${message}`); },
    };
    if (values['tls-cert'] !== undefined || values['tls-key'] !== undefined || values['tls-ca'] !== undefined) {
      if (values['tls-cert'] === undefined || values['tls-key'] === undefined) throw new UsageError('--tls-cert and --tls-key go together');
      options.tls = { cert: readFlagFile(values['tls-cert'], '--tls-cert'), key: readFlagFile(values['tls-key'], '--tls-key') };
      if (values['tls-ca'] !== undefined) options.tls.ca = readFlagFile(values['tls-ca'], '--tls-ca');
    }
    if (values['require-client-cert'] === true) {
      if (options.tls?.ca === undefined) throw new UsageError('--require-client-cert needs --tls-cert, --tls-key and --tls-ca');
      options.tls.requestCert = true;
    }
    const token = values['token-file'] !== undefined ? readFlagFile(values['token-file'], '--token-file').toString('utf8').trim() : io.env.GRIDWIRE_TOKEN;
    if (token !== undefined && token !== '') options.auth = { token };
    const server = await listen(values.listen, options);
    log(`gridwire serve: listening on ${server.url}, directory ${dir}${options.auth === undefined ? '' : ', token required'}`);
    if (values.json === true) io.stdout.write(`${JSON.stringify({ listening: server.url, dir })}\n`);
    await new Promise<void>((resolve) => {
      if (io.signal.aborted) resolve();
      else io.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    log('gridwire serve: closing (transfers in flight keep their verified prefix)');
    await server.close({ graceMs: 2000 });
    await transfers.close();
    log('gridwire serve: closed');
    return EXIT.OK;
  },
};
