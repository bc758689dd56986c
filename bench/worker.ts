// One side of one benchmark run, in its own process (started by harness.ts over a fork IPC channel):
//   node --import tsx bench/worker.ts <system> server
//   node --import tsx bench/worker.ts <system> client <target> <concurrency>
// The client keeps <concurrency> calls outstanding on one connection from `start` until the second `mark`, and
// records per-call latency only between the two marks. Both sides report process.cpuUsage() over that window.
import { performance } from 'node:perf_hooks';
import { closeAndExit, fail, initWorker, send } from './child.js';
import type { ParentMsg } from './protocol.js';
import { LatencyRecorder } from './stats.js';
import { isSystemName, loadSystem } from './systems/index.js';
import type { BenchClient, BenchSystem } from './systems/types.js';


async function runServer(system: BenchSystem): Promise<void> {
  const server = await system.startServer();
  let cpu0: NodeJS.CpuUsage | undefined;
  let t0 = 0;
  process.on('message', function serverOnParentMsg(msg: ParentMsg) {
    if (msg.t === 'mark' && cpu0 === undefined) {
      cpu0 = process.cpuUsage();
      t0 = performance.now();
    } else if (msg.t === 'mark') {
      const elapsedMs = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      send({ t: 'report', report: { role: 'server', elapsedMs, cpu: { userUs: cpu.user, systemUs: cpu.system } } });
    } else if (msg.t === 'stop') {
      void closeAndExit(() => server.close());
    }
  });
  send({ t: 'ready', target: server.target });
}

async function runClient(system: BenchSystem, target: string, concurrency: number): Promise<void> {
  const latencies = new LatencyRecorder();
  let phase: 'idle' | 'warmup' | 'measure' | 'done' = 'idle';
  let count = 0;
  let t0 = 0;
  let cpu0: NodeJS.CpuUsage = process.cpuUsage();

  const client: BenchClient = await system.connectClient(target, function onReply(err, callT0) {
    if (err !== null) fail(err);
    if (phase === 'measure') {
      latencies.record(performance.now() - callT0);
      count++;
    }
    if (phase === 'warmup' || phase === 'measure') client.call(performance.now());
  });

  process.on('message', function clientOnParentMsg(msg: ParentMsg) {
    if (msg.t === 'start' && phase === 'idle') {
      phase = 'warmup';
      for (let i = 0; i < concurrency; i++) client.call(performance.now());
    } else if (msg.t === 'mark' && phase === 'warmup') {
      phase = 'measure';
      latencies.reset();
      count = 0;
      cpu0 = process.cpuUsage();
      t0 = performance.now();
    } else if (msg.t === 'mark' && phase === 'measure') {
      const elapsedMs = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      phase = 'done';
      const [p50Us = NaN, p99Us = NaN] = latencies.percentilesUs([0.5, 0.99]);
      send({
        t: 'report',
        report: { role: 'client', count, elapsedMs, p50Us, p99Us, cpu: { userUs: cpu.user, systemUs: cpu.system } },
      });
    } else if (msg.t === 'stop') {
      void closeAndExit(() => client.close());
    }
  });
  send({ t: 'ready', target });
}

async function main(): Promise<void> {
  initWorker('bench/worker.ts');
  const [name = '', role, target = '', conc = '1'] = process.argv.slice(2);
  if (!isSystemName(name)) fail(new Error(`unknown system '${name}'`));
  const system = await loadSystem(name);
  if (role === 'server') await runServer(system);
  else if (role === 'client') await runClient(system, target, Number(conc));
  else fail(new Error(`unknown role '${String(role)}'`));
}

main().catch(fail);
