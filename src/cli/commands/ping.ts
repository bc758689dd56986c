/**
 * `gridwire ping ADDR`: dials, shows what the peer said about itself in the handshake (its node name, the protocol
 * version, the limits it announced, its TLS identity), then measures round trips with PING frames, as ping(8) does:
 * one line per reply, min/avg/max at the end.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { connect } from '../../endpoint/endpoints.js';
import type { RpcSession } from '../../rpc/rpc-session.js';
import { UsageError, type CliCommand, type CliIo } from '../command.js';
import { CONNECT_FLAGS_USAGE, connectFlags, connectOptionsFrom, parseDuration } from '../connect-flags.js';
import { EXIT } from '../exit-codes.js';

const USAGE = `usage: gridwire ping ADDR [--count N] [--interval DURATION] [flags]

Connects to ADDR, prints the peer's handshake facts (node name, protocol version, the limits it announced, its TLS
certificate when there is one), then sends N pings and prints each round trip and min/avg/max.

  --count N             pings to send (default 4; 0 = until interrupted)
  --interval DURATION   time between pings (default 1s)

${CONNECT_FLAGS_USAGE}

Examples:
  gridwire ping tcp://127.0.0.1:7000
  gridwire ping tls://node-b:7000 --tls-ca ca.pem --count 10 --interval 200ms --json`;

/** What `--json` prints (one object at the end) and what the human lines are made from. */
export interface PingReport {
  ok: true;
  address: string;
  peer: ReturnType<typeof handshakeFacts>;
  rttsMs: number[];
  minMs: number;
  avgMs: number;
  maxMs: number;
}

export const command: CliCommand = {
  name: 'ping',
  summary: "measure round trips to a node and show its handshake facts (name, version, limits, TLS identity)",
  usage: USAGE,
  async run(args, io) {
    const { values, positionals } = parseCommandLine(args);
    const [address, extra] = positionals;
    if (address === undefined) throw new UsageError('ping needs ADDR');
    if (extra !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(extra)}`);
    const count = values.count === undefined ? 4 : Number(values.count);
    if (!Number.isInteger(count) || count < 0) throw new UsageError(`--count ${JSON.stringify(values.count)} is not a whole number`);
    const intervalMs = values.interval === undefined ? 1000 : parseDuration(values.interval, '--interval');
    const json = values.json === true;

    const session = await connect(address, { ...connectOptionsFrom(values, io.env), signal: io.signal });
    try {
      const peer = handshakeFacts(session);
      if (!json) printFacts(io, address, peer);
      const rtts: number[] = [];
      for (let seq = 1; count === 0 || seq <= count; seq++) {
        if (seq > 1) await sleep(intervalMs, undefined, { signal: io.signal }).catch(() => undefined);
        if (io.signal.aborted) break;
        const rtt = await session.ping();
        rtts.push(rtt);
        if (!json) io.stdout.write(`reply from ${peer.nodeName || address}: seq=${seq} rtt=${rtt.toFixed(3)} ms\n`);
      }
      const report: PingReport = { ok: true, address, peer, rttsMs: rtts, ...summary(rtts) };
      if (json) io.stdout.write(`${JSON.stringify(report)}\n`);
      else if (rtts.length > 0) {
        io.stdout.write(`--- ${address} ping: ${rtts.length} replies, rtt min/avg/max = ${report.minMs.toFixed(3)}/${report.avgMs.toFixed(3)}/${report.maxMs.toFixed(3)} ms\n`);
      }
      return io.signal.aborted ? EXIT.INTERRUPTED : EXIT.OK;
    } finally {
      await session.close({ graceMs: 0 }).catch(() => undefined);
    }
  },
};

function parseCommandLine(args: string[]) {
  try {
    return parseArgs({ args, allowPositionals: true, strict: true, options: { ...connectFlags, count: { type: 'string' }, interval: { type: 'string' } } });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** The peer as its handshake told it: names, version, announced limits, TLS identity (never a credential). */
function handshakeFacts(session: RpcSession) {
  const peer = session.peer;
  const hello = session.peerHello;
  const s = hello?.settings;
  const identity = peer.identity;
  return {
    nodeName: peer.nodeName,
    label: peer.label,
    transport: peer.transport,
    address: peer.address,
    protocolVersion: hello?.protocolVersion,
    features: peer.features,
    limits: s === undefined ? undefined : {
      maxFrameBytes: s.maxFrameBytes,
      maxMessageBytes: s.maxMessageBytes,
      maxConcurrentStreams: s.maxConcurrentStreams,
      initialStreamWindow: s.initialStreamWindow,
      initialMessageWindow: s.initialMessageWindow,
      connectionWindow: s.connectionWindow,
    },
    tls: identity === undefined ? undefined : {
      subject: identity.subject,
      commonName: identity.commonName,
      dnsNames: identity.dnsNames,
      uris: identity.uris,
      ips: identity.ips,
      fingerprint256: identity.fingerprint256,
      validTo: identity.validTo.toISOString(),
    },
  };
}

function printFacts(io: CliIo, address: string, peer: ReturnType<typeof handshakeFacts>): void {
  const lines = [
    `PING ${address}: node ${peer.nodeName === '' ? '(no name)' : JSON.stringify(peer.nodeName)}${peer.label === '' ? '' : ` label ${JSON.stringify(peer.label)}`}, protocol v${peer.protocolVersion ?? '?'} over ${peer.transport}`,
  ];
  if (peer.limits !== undefined) {
    const l = peer.limits;
    lines.push(`  limits: frame ${l.maxFrameBytes} B, message ${l.maxMessageBytes} B, ${l.maxConcurrentStreams} concurrent streams, stream window ${l.initialStreamWindow} B / ${l.initialMessageWindow} messages, connection window ${l.connectionWindow} B`);
  }
  if (peer.tls !== undefined) {
    const t = peer.tls;
    const names = [...t.dnsNames, ...t.uris, ...t.ips].join(', ');
    lines.push(`  tls: ${t.commonName !== undefined ? `CN=${t.commonName}` : 'no CN'}${names === '' ? '' : ` (${names})`}, sha256 ${t.fingerprint256}, valid to ${t.validTo}`);
  } else if (peer.transport === 'tcp' || peer.transport === 'unix') {
    lines.push('  tls: none (plain connection)');
  }
  io.stdout.write(`${lines.join('\n')}\n`);
}

function summary(rtts: number[]): { minMs: number; avgMs: number; maxMs: number } {
  if (rtts.length === 0) return { minMs: 0, avgMs: 0, maxMs: 0 };
  let min = Infinity;
  let max = 0;
  let sum = 0;
  for (const rtt of rtts) {
    min = Math.min(min, rtt);
    max = Math.max(max, rtt);
    sum += rtt;
  }
  return { minMs: min, avgMs: sum / rtts.length, maxMs: max };
}
