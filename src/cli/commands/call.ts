/**
 * `gridwire call ADDR service/method '{json}'`: one call by its path, without the service's definition (one is made at
 * run time with defineService), the request as JSON, the response printed as JSON. `--stream` calls a serverStream
 * method and prints its responses as NDJSON. For debugging daemons; the service's own client is the way in code.
 */
import { parseArgs } from 'node:util';
import { connect } from '../../endpoint/endpoints.js';
import type { CallOptions } from '../../rpc/client/call-options.js';
import type { CodecName } from '../../rpc/codec.js';
import { RpcError } from '../../rpc/rpc-error.js';
import { defineService, serverStream, unary } from '../../rpc/service.js';
import type { Metadata } from '../../wire/metadata.js';
import { UsageError, type CliCommand, type CliIo } from '../command.js';
import { CONNECT_FLAGS_USAGE, connectFlags, connectOptionsFrom, parseDuration } from '../connect-flags.js';
import { describeError, printError } from '../errors.js';
import { EXIT } from '../exit-codes.js';
import { formatJsonMessage, jsonReplacer, parseJsonMessage } from '../json-values.js';

const USAGE = `usage: gridwire call ADDR SERVICE/METHOD [REQUEST|-] [flags]

Calls one method by its path and prints the response as JSON (indented on a terminal, one line otherwise).
REQUEST is JSON (default {}); - reads it from stdin. Bytes are {"$bytes": "<base64>"} both ways.

  --codec msgpack|json   the method's message codec (default msgpack, gridwire's default)
  --metadata KEY=VALUE   request metadata; repeat for more entries
  --stream               the method is a serverStream: print each response as one JSON line (NDJSON)
  --trailers             also print the trailer metadata (stderr; in the --json object)
  --timeout DURATION     bounds the dial, and the call (default 10s for a unary call; a stream has none unless given)

${CONNECT_FLAGS_USAGE}

Examples:
  gridwire call tcp://127.0.0.1:7000 files.v1/stat '{"path": "/etc/hosts"}'
  echo '{"n": 3}' | gridwire call tls://db:7000 jobs.v1/watch - --stream --tls-ca ca.pem

Exit codes: 0 the call succeeded; 6 it failed with a status (printed as NAME: message), 3 the peer is unreachable,
the connection was lost or the deadline passed, 4 refused (token, TLS, authorization), 5 incompatible peer, 2 usage.`;

const DEFAULT_UNARY_TIMEOUT_MS = 10_000;

export const command: CliCommand = {
  name: 'call',
  summary: 'call one method by its path with a JSON request, print the response as JSON',
  usage: USAGE,
  async run(args, io) {
    const { values, positionals } = parseCommandLine(args);
    const json = values.json === true;
    const [address, path, requestArg] = positionals;
    if (address === undefined || path === undefined) throw new UsageError('call needs ADDR and SERVICE/METHOD');
    if (positionals.length > 3) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[3])}`);
    const codec = values.codec ?? 'msgpack';
    if (codec !== 'msgpack' && codec !== 'json') throw new UsageError(`--codec ${JSON.stringify(codec)}: use msgpack or json`);
    const stream = values.stream === true;
    const service = serviceFor(path, codec, stream);
    const metadata = metadataFrom(values.metadata ?? []);
    const request = requestArg === '-' ? parseJsonMessage(await readAll(io), 'the request on stdin') : parseJsonMessage(requestArg ?? '{}', 'REQUEST');
    const timeoutMs = values.timeout === undefined ? undefined : parseDuration(values.timeout, '--timeout');

    const session = await connect(address, { ...connectOptionsFrom(values, io.env), signal: io.signal });
    let trailer: Metadata | undefined;
    const options: CallOptions = {
      metadata,
      signal: io.signal,
      timeoutMs: timeoutMs ?? (stream ? undefined : DEFAULT_UNARY_TIMEOUT_MS),
      onTrailer: (t) => (trailer = t),
    };
    try {
      const client = session.client(service.def) as unknown as Record<string, (request: unknown, options: CallOptions) => unknown>;
      const call = client[service.method]!;
      if (stream) {
        let count = 0;
        for await (const response of call(request, options) as AsyncIterable<unknown>) {
          count++;
          io.stdout.write(`${json ? JSON.stringify({ response }, jsonReplacer) : formatJsonMessage(response, false)}\n`);
        }
        if (json) io.stdout.write(`${JSON.stringify({ ok: true, responses: count, trailers: values.trailers === true ? (trailer ?? {}) : undefined }, jsonReplacer)}\n`);
        else printTrailers(io, values.trailers === true, trailer);
      } else {
        const response = await (call(request, options) as Promise<unknown>);
        if (json) io.stdout.write(`${JSON.stringify({ ok: true, response: response ?? null, trailers: values.trailers === true ? (trailer ?? {}) : undefined }, jsonReplacer)}\n`);
        else {
          io.stdout.write(`${formatJsonMessage(response, io.stdout.isTTY === true)}\n`);
          printTrailers(io, values.trailers === true, trailer);
        }
      }
      return EXIT.OK;
    } catch (error) {
      if (io.signal.aborted) return EXIT.INTERRUPTED;
      const report = describeError(error);
      printError(report, io, json);
      if (values.trailers === true && error instanceof RpcError && !json) printTrailers(io, true, error.metadata);
      return report.exitCode;
    } finally {
      await session.close({ graceMs: 0 }).catch(() => undefined);
    }
  },
};

function parseCommandLine(args: string[]) {
  try {
    return parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        ...connectFlags,
        codec: { type: 'string' },
        metadata: { type: 'string', multiple: true },
        stream: { type: 'boolean', default: false },
        trailers: { type: 'boolean', default: false },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** A service definition with the one method `path` names, of the kind and codec asked. */
function serviceFor(path: string, codec: CodecName, stream: boolean) {
  const slash = path.lastIndexOf('/');
  if (slash <= 0 || slash === path.length - 1) throw new UsageError(`${JSON.stringify(path)} is not SERVICE/METHOD (e.g. files.v1/stat)`);
  const serviceName = path.slice(0, slash);
  const method = path.slice(slash + 1);
  try {
    const def = defineService(serviceName, { [method]: stream ? serverStream<unknown, unknown>({ codec }) : unary<unknown, unknown>({ codec }) });
    return { def, method };
  } catch (error) {
    throw new UsageError(`${JSON.stringify(path)}: ${(error as Error).message}`);
  }
}

function metadataFrom(entries: string[]): Metadata {
  const metadata: Metadata = {};
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new UsageError(`--metadata ${JSON.stringify(entry)} is not KEY=VALUE`);
    metadata[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return metadata;
}

function printTrailers(io: CliIo, wanted: boolean, trailer: Metadata | undefined): void {
  if (wanted) io.stderr.write(`trailers: ${JSON.stringify(trailer ?? {}, jsonReplacer)}\n`);
}

async function readAll(io: CliIo): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of io.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

