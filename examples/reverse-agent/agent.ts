/**
 * The agent: a process that cannot be dialed (behind NAT, or no listening port by policy), so it dials the
 * controller and serves the Agent service on that connection. A channel keeps the connection up: when it is lost
 * (the controller restarts, the network blips) the channel redials with backoff, and the agent registers again on
 * every new connection, so the controller always knows how to reach it.
 *
 * Started by main.ts: `agent.ts <controller url> <agent name> <work dir>`. SIGTERM closes it cleanly.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { channel, RpcError, serve, Status } from '../../src/index.js';
import { Agent, Controller, type FileInfo } from './services.js';

const [controllerUrl, name, workDir] = process.argv.slice(2);
if (controllerUrl === undefined || name === undefined || workDir === undefined) {
  throw new Error('usage: agent.ts <controller url> <agent name> <work dir>');
}
const startedAt = Date.now();

// What the agent shows to the controller: a log it keeps, and a file on its disk (a core dump, a database backup...).
const logLines: { at: string; line: string }[] = [];
function log(line: string): void {
  console.log(`[${name}] ${line}`);
  logLines.push({ at: new Date().toISOString(), line });
  if (logLines.length > 100) logLines.shift();
}
const dumpBytes = randomBytes(8 * 1024 * 1024);
const dump: FileInfo = { name: 'dump.bin', bytes: dumpBytes.length, sha256: createHash('sha256').update(dumpBytes).digest('hex') };
await writeFile(join(workDir, dump.name), dumpBytes);
log(`started (pid ${process.pid}); ${dump.name} is ${dump.bytes} bytes`);

const agentService = serve(Agent, {
  info: () => ({ name, pid: process.pid, uptimeMs: Date.now() - startedAt, files: [dump] }),
  async *tailLog({ lines }) {
    // a copy: lines logged while the stream is read do not shift it
    for (const entry of logLines.slice(-lines)) yield entry;
  },
  fetchFile({ name: wanted }) {
    // only files the agent advertises: never a path from the network straight to the disk
    if (wanted !== dump.name) throw new RpcError(Status.NOT_FOUND, `no file ${JSON.stringify(wanted)} on ${name}`);
    log(`sending ${dump.name} to the controller`);
    return createReadStream(join(workDir, dump.name));
  },
});

const controllerLink = channel(controllerUrl, {
  services: [agentService], // served to the controller on every connection the channel makes
  nodeName: name,
  // Short delays so the example moves quickly. A fleet keeps the default lossSpreadMs (10 s): when the controller
  // restarts, thousands of agents must not come back in the same second.
  reconnect: { initialDelayMs: 100, maxDelayMs: 1_000, lossSpreadMs: 500 },
  log: (level, message) => {
    if (level === 'warn') log(`gridwire: ${message}`);
  },
});

// Register on every new connection: the controller forgets an agent when its connection goes, and a controller that
// restarted has forgotten everything.
controllerLink.on('state', ({ state, error, delayMs }) => {
  if (state === 'backoff') log(`not connected (${error?.message ?? 'closed'}); redialing in ${Math.round(delayMs ?? 0)} ms`);
  if (state !== 'ready') return;
  log('connected to the controller; registering');
  controllerLink
    .client(Controller)
    .register({ name, pid: process.pid, version: '1.4.2' }, { timeoutMs: 5_000 })
    .then(
      ({ accepted }) => log(accepted ? 'registered' : 'registration refused'),
      (error: unknown) => log(`registration failed: ${(error as Error).message}`), // the next connection registers again
    );
});

// SIGTERM: stop redialing and close the connection gracefully; with nothing left open the process exits by itself.
process.once('SIGTERM', () => {
  log('SIGTERM: closing the connection');
  void controllerLink.close({ graceMs: 1_000 });
});
