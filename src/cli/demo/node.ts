/**
 * One node of `gridwire demo`, in its own process (spawned by orchestrator.ts with the parent's node and execArgv, so
 * it runs compiled and under tsx alike): a Mesh over mutual TLS (or plain TCP with --plain) with a data lane, serving
 * the demo's status call and, on a receiving node, the transfer service writing into its store directory. It does
 * what the orchestrator's messages ask (messages.ts) and reports on the IPC channel every tick.
 *
 * It never outlives the orchestrator: when the IPC channel closes (the parent exited, however it exited) it exits.
 */
import { readFileSync } from 'node:fs';
import { Mesh } from '../../mesh/mesh.js';
import type { FromNode, LinkStates, NodeConfig, ToNode } from './messages.js';
import { demoStatusService } from './service.js';
import { CallRecorder, runTraffic, timedCall } from './traffic.js';
import { receiverServices, Replication, verifyReceived } from './replicate.js';

function send(message: FromNode): void {
  if (process.connected) process.send!(message);
}

/** Which lanes to each peer have a connection now. */
function linkStates(mesh: Mesh): LinkStates {
  const links: LinkStates = {};
  for (const name of mesh.peerNames) {
    const sessions = mesh.peer(name).sessions;
    const up = (lane: string): boolean => [...(sessions.get(lane) ?? [])].some((s) => s.acceptsCalls);
    links[name] = { control: up('control'), data: up('data') };
  }
  return links;
}

async function main(config: NodeConfig): Promise<void> {
  const tls = config.tls === undefined
    ? undefined
    : { key: readFileSync(config.tls.key), cert: readFileSync(config.tls.cert), ca: readFileSync(config.tls.ca) };
  const mesh = new Mesh({
    name: config.name,
    listen: config.listen,
    tls,
    dataLane: true,
    services: [demoStatusService(config.name), ...(config.storeDir === undefined ? [] : receiverServices(config.storeDir))],
    // brisk, so a killed and restarted node is back within a second or two of its restart
    reconnect: { initialDelayMs: 100, maxDelayMs: 1_000, lossSpreadMs: 300 },
    fallbackDialAfterMs: 1_000,
    log: (level, message) => {
      if (level === 'warn') process.stderr.write(`[${config.name}] ${message}\n`);
    },
  });
  mesh.on('peer', (event) => send({ t: 'peer', peer: event.peer, state: event.state, lane: event.lane, error: event.error?.message, delayMs: event.delayMs }));
  await mesh.start();

  const recorder = new CallRecorder(config.name);
  const traffic = new AbortController();
  let trafficDone: Promise<void> = Promise.resolve();
  let replication: Replication | undefined;
  const addPeers = (peers: Record<string, string>): void => {
    for (const [name, url] of Object.entries(peers)) if (!mesh.peerNames.includes(name)) mesh.addPeer(name, url);
  };
  if (config.peers !== undefined) addPeers(config.peers);

  const tick = (): void => {
    const cpu = process.cpuUsage();
    send({ t: 'tick', links: linkStates(mesh), calls: recorder.take(), transfers: replication?.progress() ?? [], cpuMs: Math.round((cpu.user + cpu.system) / 1000), rssBytes: process.memoryUsage.rss() });
  };
  const ticker = setInterval(tick, config.tickMs);
  send({ t: 'listening', url: mesh.url!, pid: process.pid });

  process.on('message', (message: ToNode) => {
    switch (message.t) {
      case 'peers':
        addPeers(message.peers);
        break;
      case 'traffic':
        trafficDone = runTraffic(mesh, mesh.peerNames, message.intervalMs, recorder, traffic.signal);
        break;
      case 'replicate':
        replication = new Replication(mesh, message);
        replication.start(
          (transfer, error, sourceSha256) => {
            if (error === undefined) send({ t: 'transfer-done', transfer, sourceSha256: sourceSha256! });
            else send({ t: 'transfer-failed', transfer, error });
          },
          (to, offset, verified) => send({ t: 'held', to, offset, verified }),
        );
        break;
      case 'release':
        replication?.release();
        break;
      case 'quiet':
        void quiet().then(() => send({ t: 'ack' }));
        break;
      case 'window':
        recorder.windowNode = message.node;
        send({ t: 'ack' });
        break;
      case 'probe':
        void timedCall(mesh, message.peer, 0, recorder, message.timeoutMs).then(({ status, ms, message: text }) =>
          send({ t: 'probed', peer: message.peer, status, ms, message: text }));
        break;
      case 'verify':
        verifyReceived(config.storeDir!, message.name, config.corrupt === true).then(
          (digest) => send({ t: 'digest', name: message.name, ...digest }),
          (error: unknown) => send({ t: 'failed', error: `verifying ${message.name}: ${(error as Error).message}` }),
        );
        break;
      case 'stop':
        void stop();
        break;
    }
  });

  async function quiet(): Promise<void> {
    traffic.abort();
    await trafficDone;
    tick();
  }

  async function stop(): Promise<void> {
    await quiet();
    clearInterval(ticker);
    replication?.abort();
    await mesh.stop({ graceMs: 0 });
    send({ t: 'stopped' });
    process.disconnect();
  }
}

process.on('disconnect', () => process.exit(0));
// ^C in a terminal reaches the whole process group: the orchestrator decides when its nodes stop (it kills them)
process.on('SIGINT', () => undefined);
main(JSON.parse(process.argv[2] ?? '{}') as NodeConfig).catch((error: unknown) => {
  send({ t: 'failed', error: (error as Error).message });
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
