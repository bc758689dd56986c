/**
 * `npm start`: two processes on loopback calling each other both ways over one connection. The controller (this
 * process) listens; the agent (a child process) dials in, registers, and is called back by the controller with a
 * unary call, a raw-bytes call, a call that hits its deadline and a call that is cancelled.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { RpcError } from '../../src/index.js';
import { listen, serve, type RpcSession } from '../../src/index.js';
import { Agent, Controller } from './demo-services.js';

function log(line: string): void {
  console.log(`[controller] ${line}`);
}

let registered: (session: RpcSession) => void;
const agentSession = new Promise<RpcSession>((resolve) => (registered = resolve));
const agents = new Set<string>();

const controller = serve(Controller, {
  register({ name, cores }, ctx) {
    agents.add(name);
    log(`${name} registered from ${ctx.peer.address} with ${cores} cores`);
    registered(ctx.session);
    return { welcome: `hello ${name}`, agentsKnown: agents.size };
  },
  report({ name, load }) {
    log(`${name} reports load ${load}`);
    return { ok: true };
  },
});

const server = await listen('tcp://127.0.0.1:0', { services: [controller], nodeName: 'controller' });
log(`listening on ${server.url}`);
const child = fork(fileURLToPath(new URL('./demo-agent.ts', import.meta.url)), [server.url], { stdio: 'inherit' });
const childExit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
const watchdog = setTimeout(() => {
  log('demo took longer than 20 s; giving up');
  child.kill('SIGKILL');
  process.exit(1);
}, 20_000);

try {
  const session = await agentSession;
  const agent = session.client(Agent);
  const status = await agent.status({});
  log(`called back ${status.name} (pid ${status.pid}) on the same connection: up ${status.uptimeMs} ms`);
  const reversed = await agent.blob(new TextEncoder().encode('gridwire'));
  log(`raw bytes call returned "${new TextDecoder().decode(reversed)}"`);
  const done = await agent.runTask({ task: 'compact', sleepMs: 20 }, { timeoutMs: 1000 });
  log(`task ${done.task} finished in ${done.tookMs} ms`);
  try {
    await agent.runTask({ task: 'slow', sleepMs: 5000 }, { timeoutMs: 100 });
  } catch (error) {
    log(`task slow: ${(error as RpcError).message}`);
  }
  const cancel = new AbortController();
  setTimeout(() => cancel.abort(), 50);
  try {
    await agent.runTask({ task: 'cancelled', sleepMs: 5000 }, { signal: cancel.signal });
  } catch (error) {
    log(`task cancelled: ${(error as RpcError).message}`);
  }
  const rtt = await session.ping();
  log(`ping RTT ${rtt.toFixed(3)} ms; closing`);
  await server.close();
  const code = await childExit;
  log(`agent exited with code ${code}`);
  clearTimeout(watchdog);
  process.exitCode = code === 0 ? 0 : 1;
} catch (error) {
  clearTimeout(watchdog);
  log(`demo failed: ${(error as Error).message}`);
  child.kill();
  await server.close();
  process.exitCode = 1;
}
