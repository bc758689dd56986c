/** `gridwire send FILE|- ADDR NAME`: sends a file (or stdin) to a `gridwire serve`, resuming after lost connections. */
import { parseArgs } from 'node:util';
import type { CliCommand } from '../command.js';
import { MAX_CHUNKS_AHEAD } from '../transfer/protocol.js';
import { UsageError } from '../command.js';
import { CONNECT_FLAGS_USAGE, connectFlags, connectOptionsFrom } from '../connect-flags.js';
import { EXIT } from '../exit-codes.js';
import { Redialer, TRANSFER_FLAGS_USAGE, TransferDisplay, chunkSizeOf, reportSummary, retryForMs, transferFlags } from '../transfer-cli.js';
import { DEFAULT_WINDOW_CHUNKS, fileSource, nameProblem, sendTransfer, streamSource, type TransferSource, type TransferSummary } from '../transfer/index.js';

const usage = `usage: gridwire send FILE|- ADDR NAME [flags]

Sends FILE (or stdin, for "-") to the gridwire serve at ADDR, which stores it as NAME in its directory. Each chunk is
verified by the receiver (sha256) before it counts; a lost connection is redialed and the transfer resumes from the
receiver's verified offset; the whole sha256 is compared at the end. Progress goes to stderr.

  gridwire send backup.tar tcp://host:7070 backup.tar
  zfs send pool/fs@snap | gridwire send - tcp://host:7070 fs@snap

  --window N            chunks sent and not yet acknowledged, at most (default ${DEFAULT_WINDOW_CHUNKS}): what a cut can make it send
                        again, and what it holds in memory
${TRANSFER_FLAGS_USAGE}
${CONNECT_FLAGS_USAGE}

Exit: 0 the receiver confirmed the whole sha256; 1 it differs (the file is not put in place); 2 usage (a missing
FILE, a malformed ADDR, a NAME that is not a plain file name); 3 nothing listening, or a cut that did not heal within
--retry-for; 4 refused (token, TLS); 6 the receiver refused the transfer (another sender holds NAME).`;

export const command: CliCommand = {
  name: 'send',
  summary: 'send a file or stdin to a gridwire serve (resumable, sha256-verified)',
  usage,
  async run(args, io) {
    const { values, positionals } = parseArgs({
      args, options: { ...connectFlags, ...transferFlags, window: { type: 'string' } }, allowPositionals: true, strict: true,
    });
    if (positionals.length !== 3) throw new UsageError(`send takes FILE|- ADDR NAME (got ${positionals.length} argument${positionals.length === 1 ? '' : 's'})`);
    const [path, url, name] = positionals as [string, string, string];
    const problem = nameProblem(name);
    if (problem !== undefined) throw new UsageError(`NAME: ${problem}`);
    const chunkSize = chunkSizeOf(values);
    const windowChunks = values.window === undefined ? DEFAULT_WINDOW_CHUNKS : Number(values.window);
    if (!Number.isInteger(windowChunks) || windowChunks < 1 || windowChunks > MAX_CHUNKS_AHEAD) {
      throw new UsageError(`--window must be a whole number of chunks, 1..${MAX_CHUNKS_AHEAD}`);
    }
    const options = connectOptionsFrom(values, io.env);
    let source: TransferSource;
    if (path === '-') {
      source = streamSource(io.stdin);
    } else {
      try {
        source = await fileSource(path);
      } catch (error) {
        throw new UsageError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
      }
    }
    const redialer = new Redialer(url, options);
    await redialer.first();
    const display = new TransferDisplay(io, `${path === '-' ? 'stdin' : path} -> ${name}`, values.quiet === true);
    let summary: TransferSummary | undefined;
    try {
      summary = await sendTransfer({
        client: redialer.client, source, name, chunkSize, windowChunks, retryForMs: retryForMs(values), signal: io.signal,
        onProgress: display.onProgress, onEvent: display.onEvent,
      });
    } finally {
      display.end(summary);
      await redialer.close();
    }
    if (io.signal.aborted) return EXIT.INTERRUPTED;
    return reportSummary(io, summary, values.json === true, 'sent');
  },
};
