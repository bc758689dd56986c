/** `gridwire recv ADDR NAME -o FILE|-`: downloads a file from a `gridwire serve`, resuming after lost connections. */
import { basename, dirname } from 'node:path';
import { parseArgs } from 'node:util';
import type { CliCommand, CliIo } from '../command.js';
import type { ConnectOptions } from '../../endpoint/endpoints.js';
import { UsageError } from '../command.js';
import { CONNECT_FLAGS_USAGE, connectFlags, connectOptionsFrom } from '../connect-flags.js';
import { describeError, printError } from '../errors.js';
import { EXIT } from '../exit-codes.js';
import { Redialer, TRANSFER_FLAGS_USAGE, type TransferFlagValues, TransferDisplay, chunkSizeOf, reportSummary, retryForMs, transferFlags } from '../transfer-cli.js';
import { FileSink, FileStore, StreamSink, nameProblem, receiveTransfer, type ChunkSink, type TransferSummary } from '../transfer/index.js';

const usage = `usage: gridwire recv ADDR NAME [-o FILE|-] [flags]

Downloads NAME from the gridwire serve at ADDR into FILE (default: ./NAME), or to stdout for "-o -". Each chunk is
verified (sha256) before it is written; a lost connection is redialed and the download resumes from the verified
offset. Into a FILE, the partial download is kept as FILE.part (and FILE.part.state): running the same command again
resumes it. To stdout, only verified chunks are written, so a pipe never sees bytes that are taken back. The whole
sha256 is compared at the end. Progress goes to stderr; with "-o -", so does the --json summary (or error), so that
stdout carries the data only.

  gridwire recv tcp://host:7070 backup.tar -o /tmp/backup.tar
  gridwire recv tcp://host:7070 fs@snap -o - | zfs recv pool/fs

  -o, --output FILE|-   where to write (default ./NAME)
${TRANSFER_FLAGS_USAGE}
${CONNECT_FLAGS_USAGE}

Exit: 0 the whole sha256 matched; 1 it differs (FILE is not put in place); 2 usage; 3 nothing listening, or a cut
that did not heal within --retry-for; 4 refused (token, TLS); 6 the server has no such NAME.`;

export const command: CliCommand = {
  name: 'recv',
  summary: 'download a file from a gridwire serve to a file or stdout (resumable, sha256-verified)',
  usage,
  async run(args, io) {
    const { values, positionals } = parseArgs({
      args, options: { ...connectFlags, ...transferFlags, output: { type: 'string', short: 'o' } }, allowPositionals: true, strict: true,
    });
    if (positionals.length !== 2) throw new UsageError(`recv takes ADDR NAME (got ${positionals.length} argument${positionals.length === 1 ? '' : 's'})`);
    const [url, name] = positionals as [string, string];
    const problem = nameProblem(name);
    if (problem !== undefined) throw new UsageError(`NAME: ${problem}`);
    const output = values.output ?? name;
    const chunkSize = chunkSizeOf(values);
    const options = connectOptionsFrom(values, io.env);
    if (output !== '-') {
      const outProblem = nameProblem(basename(output));
      if (outProblem !== undefined) throw new UsageError(`-o ${output}: ${outProblem}`);
    }
    if (output !== '-') return receive(url, name, output, chunkSize, options, values, io);
    try {
      return await receive(url, name, output, chunkSize, options, values, io);
    } catch (error) {
      // stdout carries the data: the --json error object goes to stderr, not after the bytes (main would print it on stdout)
      if (io.signal.aborted) return EXIT.INTERRUPTED;
      const report = describeError(error);
      printError(report, { stdout: io.stderr, stderr: io.stderr }, values.json === true);
      return report.exitCode;
    }
  },
};

/** The download itself (run() picks where its errors are printed). */
async function receive(
  url: string, name: string, output: string, chunkSize: number, options: ConnectOptions,
  values: TransferFlagValues & { json?: boolean }, io: CliIo,
): Promise<number> {
  const redialer = new Redialer(url, options);
  await redialer.first();
  let sink: ChunkSink;
  try {
    sink = output === '-' ? new StreamSink(io.stdout, chunkSize) : await new FileStore(dirname(output)).open(basename(output), chunkSize);
  } catch (error) {
    await redialer.close();
    throw new UsageError(`cannot write ${output}: ${(error as Error).message}`);
  }
  const display = new TransferDisplay(io, `${name} -> ${output === '-' ? 'stdout' : output}`, values.quiet === true);
  let summary: TransferSummary | undefined;
  try {
    summary = await receiveTransfer({
      client: redialer.client, name, sink, retryForMs: retryForMs(values), signal: io.signal,
      onProgress: display.onProgress, onEvent: display.onEvent,
    });
  } finally {
    display.end(summary);
    await (sink instanceof FileSink ? sink.closeOrDiscard() : sink.close());
    await redialer.close();
  }
  if (io.signal.aborted) return EXIT.INTERRUPTED;
  return reportSummary(io, summary, values.json === true, 'received', output === '-');
}
