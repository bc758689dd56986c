/**
 * What `gridwire send` and `gridwire recv` share: the flags of a transfer, a client that redials after a lost
 * connection (the first dial fails fast, so "nothing listening" is said at once; later ones are the transfer's
 * retries), the progress bar and cut/resume lines on stderr, and the summary (a line, or one JSON object).
 */
import { connect } from '../endpoint/endpoints.js';
import type { ConnectOptions } from '../endpoint/endpoints.js';
import type { RpcSession } from '../rpc/rpc-session.js';
import type { Client } from '../rpc/client/typed-client.js';
import { RpcError } from '../rpc/rpc-error.js';
import { Status } from '../wire/constants.js';
import type { CliIo } from './command.js';
import { UsageError } from './command.js';
import { parseDuration, parseSize } from './connect-flags.js';
import { EXIT } from './exit-codes.js';
import { ProgressBoard, type ProgressBar } from './progress.js';
import {
  DEFAULT_CHUNK_BYTES, DEFAULT_RETRY_FOR_MS, DEFAULT_WINDOW_CHUNKS, TransferService,
  type TransferEvent, type TransferMethods, type TransferProgress, type TransferSummary,
} from './transfer/index.js';
import { MAX_CHUNK_BYTES, MIN_CHUNK_BYTES } from './transfer/protocol.js';

/** For util.parseArgs's `options`, besides connectFlags. */
export const transferFlags = {
  'retry-for': { type: 'string' },
  'chunk-size': { type: 'string' },
  quiet: { type: 'boolean', short: 'q', default: false },
} as const;

export const TRANSFER_FLAGS_USAGE = `Transfer flags:
  --retry-for DURATION  after a lost connection, redial and resume for this long without progress, then exit 3 (default 60s)
  --chunk-size SIZE     bytes per verified chunk, ${MIN_CHUNK_BYTES / 1024}KiB..${MAX_CHUNK_BYTES / 2 ** 20}MiB (default ${DEFAULT_CHUNK_BYTES / 2 ** 20}MiB); a resume
                        re-sends at most ${DEFAULT_WINDOW_CHUNKS} chunks
  -q, --quiet           no progress on stderr`;

export interface TransferFlagValues {
  'retry-for'?: string;
  'chunk-size'?: string;
  quiet?: boolean;
}

export function retryForMs(values: TransferFlagValues): number {
  return values['retry-for'] === undefined ? DEFAULT_RETRY_FOR_MS : parseDuration(values['retry-for'], '--retry-for');
}

export function chunkSizeOf(values: TransferFlagValues): number {
  if (values['chunk-size'] === undefined) return DEFAULT_CHUNK_BYTES;
  const size = parseSize(values['chunk-size'], '--chunk-size');
  if (size < MIN_CHUNK_BYTES || size > MAX_CHUNK_BYTES) {
    throw new UsageError(`--chunk-size must be between ${MIN_CHUNK_BYTES / 1024}KiB and ${MAX_CHUNK_BYTES / 2 ** 20}MiB`);
  }
  return size;
}

/** A session to `url`, dialed again when the last one was lost. */
export class Redialer {
  private session: RpcSession | undefined;

  constructor(
    readonly url: string,
    private readonly options: ConnectOptions,
  ) {}

  /** Dials now (the first time): rejects at once when nothing listens, the token is wrong... */
  async first(): Promise<void> {
    try {
      this.session = await connect(this.url, this.options);
    } catch (error) {
      if (error instanceof RpcError && error.code === Status.UNAVAILABLE) {
        throw new RpcError(Status.UNAVAILABLE, `cannot reach ${this.url}: ${error.rawMessage} (is gridwire serve running there?)`, { cause: error });
      }
      throw error;
    }
  }

  readonly client = async (): Promise<Client<TransferMethods>> => {
    if (this.session === undefined || !this.session.acceptsCalls) {
      this.session?.destroy();
      this.session = undefined;
      this.session = await connect(this.url, this.options);
    }
    return this.session.client(TransferService);
  };

  async close(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    await session?.close({ graceMs: 1000 }).catch(() => {});
  }
}

/** The progress bar (unless --quiet) and the cut/resume lines, on stderr. */
export class TransferDisplay {
  private readonly board: ProgressBoard | undefined;
  private readonly bar: ProgressBar | undefined;

  constructor(
    private readonly io: CliIo,
    label: string,
    private readonly quiet: boolean,
  ) {
    if (!quiet) {
      this.board = new ProgressBoard(io.stderr);
      this.bar = this.board.bar(label);
    }
  }

  readonly onProgress = (progress: TransferProgress): void => {
    this.bar?.update(progress.verified, progress.total);
  };

  readonly onEvent = (event: TransferEvent): void => {
    if (this.quiet) return;
    const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
    if (event.type === 'cut') {
      this.bar?.say(`cut, retrying in ${(event.retryInMs / 1000).toFixed(1)} s`);
      this.line(`gridwire: transfer cut at ${mib(event.verified)} verified (${event.error.message}); redialing in ${(event.retryInMs / 1000).toFixed(1)} s`);
    } else {
      this.bar?.say('');
      this.line(`gridwire: resumed at ${mib(event.offset)} (attempt ${event.attempt + 1})`);
    }
  };

  /** A line of its own: on a TTY the board is redrawn below it. */
  private line(text: string): void {
    if (this.io.stderr.isTTY === true) this.io.stderr.write(`\x1b[2K${text}\n`);
    else this.io.stderr.write(`${text}\n`);
  }

  end(summary: TransferSummary | undefined): void {
    if (summary === undefined) this.bar?.fail('');
    else if (summary.ok) this.bar?.finish();
    else this.bar?.fail('sha256 mismatch');
    this.board?.stop();
  }
}

/**
 * Prints the summary (a line on stderr, or the JSON object on stdout; on stderr too when `stdoutCarriesData`, as for
 * `recv -o -`, so the data is not followed by it) and returns the exit code.
 */
export function reportSummary(io: CliIo, summary: TransferSummary, json: boolean, verb: string, stdoutCarriesData = false): number {
  const code = summary.ok ? EXIT.OK : EXIT.FAILED;
  const round = (n: number, digits: number): number => Number(n.toFixed(digits));
  if (json) {
    (stdoutCarriesData ? io.stderr : io.stdout).write(`${JSON.stringify({
      ok: summary.ok, name: summary.name, bytes: summary.bytes, sha256: summary.sha256, peerSha256: summary.peerSha256,
      seconds: round(summary.seconds, 3), mibPerSecond: round(summary.mibPerSecond, 1), cuts: summary.cuts,
      resentBytes: summary.resentBytes, resumedFrom: summary.resumedFrom, exitCode: code,
    })}\n`);
  } else if (summary.ok) {
    const resumed = summary.resumedFrom > 0 ? `, resumed from ${summary.resumedFrom}` : '';
    const cuts = summary.cuts > 0 ? `, ${summary.cuts} cut(s) healed, ${summary.resentBytes} bytes sent again` : '';
    io.stderr.write(`gridwire: ${verb} ${summary.name}: ${summary.bytes} bytes in ${summary.seconds.toFixed(2)} s (${summary.mibPerSecond.toFixed(1)} MiB/s${resumed}${cuts}); sha256 ${summary.sha256} matches\n`);
  } else {
    io.stderr.write(`gridwire: ${verb} ${summary.name}: sha256 MISMATCH: ours ${summary.sha256}, the peer's ${summary.peerSha256}; the file was not put in place\n`);
  }
  return code;
}
