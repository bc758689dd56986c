/**
 * `gridwire inspect ADDR`: asks a running node for its inspect snapshot (the built-in service gridwire.inspect.v1,
 * served when the node runs with `inspect: true`) and prints it: stalled streams first, then its connections and
 * their streams' credit, then the calls in flight. `--watch [INTERVAL]` asks again every INTERVAL until ^C; `--json`
 * prints each snapshot as one JSON line.
 */
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '../../endpoint/endpoints.js';
import { InspectService } from '../../rpc/inspect/inspect-service.js';
import { RpcError } from '../../rpc/rpc-error.js';
import { Status } from '../../wire/constants.js';
import { UsageError, type CliCommand } from '../command.js';
import { CONNECT_FLAGS_USAGE, connectFlags, connectOptionsFrom, parseDuration } from '../connect-flags.js';
import { EXIT } from '../exit-codes.js';
import { renderSnapshot } from '../inspect-view.js';

const DEFAULT_WATCH_MS = 2000;
/** Bound on one snapshot call: a node that takes longer is not answering. */
const SNAPSHOT_TIMEOUT_MS = 10_000;

const USAGE = `usage: gridwire inspect ADDR [--watch [INTERVAL]] [--json] [connection flags]

Shows what a running node is doing: its connections (peer, address, certificate, role, age, RTT, bytes, GOAWAY),
each stream's method, state, send credit, receive window, queued bytes and time blocked on credit, the calls in
flight by method, and the streams its stall watchdog found blocked on credit past the threshold (listed first,
marked !, with the side that is slow). The node must run with the inspect option (inspect: true), and its
authorize function, if any, must allow gridwire.inspect.v1/snapshot.

  --watch [INTERVAL]   ask again every INTERVAL (default 2s) until interrupted
  --json               each snapshot as one JSON object on a line of its own

${CONNECT_FLAGS_USAGE}

Examples:
  gridwire inspect tcp://127.0.0.1:7000
  gridwire inspect tls://db1:7000 --tls-ca ca.pem --tls-cert me.pem --tls-key me-key.pem --watch 1s
  gridwire inspect unix:///run/agent.sock --json | jq '.stalled'`;

/** `--watch` takes an optional value: given none (the next word is a flag, the address or nothing), it is the default. */
function withWatchValue(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg !== '--watch') {
      out.push(arg);
      continue;
    }
    const next = args[i + 1];
    if (next !== undefined && /^\d+(\.\d+)?(ms|s|m|h)?$/.test(next)) {
      out.push(`--watch=${next}`);
      i++;
    } else {
      out.push(`--watch=${DEFAULT_WATCH_MS}ms`);
    }
  }
  return out;
}

export const command: CliCommand = {
  name: 'inspect',
  summary: "a running node's connections, stream credit, stalls, calls in flight",
  usage: USAGE,
  async run(args, io) {
    const { values, positionals } = parseArgs({
      args: withWatchValue(args),
      options: { ...connectFlags, watch: { type: 'string' } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'inspect needs the address of a node: gridwire inspect ADDR' : `inspect takes one address, got ${positionals.length}: ${positionals.join(' ')}`);
    const url = positionals[0]!;
    const watchMs = values.watch === undefined ? undefined : parseDuration(values.watch, '--watch');
    if (watchMs !== undefined && watchMs < 100) throw new UsageError('--watch must be at least 100ms');
    const options = connectOptionsFrom(values, io.env);
    const session = await connect(url, { ...options, signal: io.signal });
    try {
      const inspect = session.client(InspectService);
      for (let first = true; ; first = false) {
        let snapshot;
        try {
          snapshot = await inspect.snapshot({}, { signal: io.signal, timeoutMs: SNAPSHOT_TIMEOUT_MS });
        } catch (error) {
          if (io.signal.aborted) return EXIT.INTERRUPTED;
          throw explained(error, url);
        }
        if (values.json) {
          io.stdout.write(`${JSON.stringify(snapshot)}\n`);
        } else {
          if (watchMs !== undefined) io.stdout.write(io.stdout.isTTY === true ? '\x1b[2J\x1b[H' : first ? '' : '\n');
          io.stdout.write(renderSnapshot(snapshot));
        }
        if (watchMs === undefined) return EXIT.OK;
        try {
          await sleep(watchMs, undefined, { signal: io.signal });
        } catch {
          return EXIT.INTERRUPTED;
        }
      }
    } finally {
      session.destroy();
    }
  },
};

/** What a failed snapshot means for someone at a terminal: inspect off, or refused by the node's authorize. */
function explained(error: unknown, url: string): unknown {
  if (!(error instanceof RpcError)) return error;
  if (error.code === Status.UNIMPLEMENTED) {
    return new RpcError(Status.UNIMPLEMENTED, `${url}: the node does not enable inspect: start it with inspect: true (or inspect: { stallThresholdMs })`, { cause: error });
  }
  if (error.code === Status.PERMISSION_DENIED) {
    return new RpcError(Status.PERMISSION_DENIED, `${url} refused inspect (its authorize must allow gridwire.inspect.v1/snapshot): ${error.rawMessage}`, { cause: error });
  }
  return error;
}
