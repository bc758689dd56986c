/**
 * The reverse-agent example (DRPC's case): the controller listens, an agent dials it, and the controller then calls
 * the agent's services on the agent's own connection. This process is the controller; it starts the agent as a child
 * process and tells the story:
 *   1. the agent dials in and registers; the controller calls it back: a unary call, a server stream of log lines and
 *      a bulk download of a file (sha256 checked);
 *   2. the controller restarts: the agent's channel redials by itself and registers again;
 *   3. the agent is killed (SIGKILL): a call to it fails fast; a new agent process dials in and is called back.
 * Run: `npm run example:reverse-agent`. Exits 0 when every step held.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { listen, RpcError, serve, statusName, type RpcSession, type Server } from '../../src/index.js';
import { Agent, Controller } from './services.js';
import { within } from '../within.js';

const AGENT_NAME = 'agent-1';
const AGENT_SCRIPT = fileURLToPath(new URL('./agent.ts', import.meta.url));

function log(line: string): void {
  console.log(`[controller] ${line}`);
}

// ---- The controller's registry: which connection reaches which agent -------------------------------------------

interface RegisteredAgent {
  session: RpcSession;
  pid: number;
}

const agents = new Map<string, RegisteredAgent>();
const waitingFor = new Map<string, (agent: RegisteredAgent) => void>();

/** Resolves at the next registration of `name` (call it before the event that leads to one). */
function nextRegistration(name: string): Promise<RegisteredAgent> {
  return new Promise((resolve) => waitingFor.set(name, resolve));
}

const controllerService = serve(Controller, {
  register({ name, pid, version }, ctx) {
    // ctx.session is the agent's connection: the only way to reach an agent that cannot be dialed
    const agent: RegisteredAgent = { session: ctx.session, pid };
    agents.set(name, agent);
    log(`${name} registered (pid ${pid}, version ${version}) from ${ctx.peer.address}`);
    // forget the agent when this connection goes, unless a newer connection of it has already replaced this one
    void ctx.session.closed.then(() => {
      if (agents.get(name) !== agent) return;
      agents.delete(name);
      log(`${name}'s connection closed`);
    });
    waitingFor.get(name)?.(agent);
    waitingFor.delete(name);
    return { accepted: true };
  },
});

// ---- What the controller does with an agent: every call goes over the connection the agent made ----------------

async function callAgent(name: string, agent: RegisteredAgent, downloadDir: string): Promise<void> {
  const client = agent.session.client(Agent);

  const info = await client.info({}, { timeoutMs: 2_000 });
  log(`called ${info.name} back on its own connection: pid ${info.pid}, up ${info.uptimeMs} ms`);

  log(`${name}'s last log lines (server stream):`);
  for await (const { at, line } of client.tailLog({ lines: 3 }, { timeoutMs: 2_000 })) log(`  | ${at.slice(11, 23)} ${line}`);

  const file = info.files[0]!;
  const hash = createHash('sha256');
  let bytes = 0;
  const started = performance.now();
  // a bulk download: the body is written to disk as it arrives, hashed on the way; a cut body rejects the pipeline
  await pipeline(
    client.fetchFile({ name: file.name }, { timeoutMs: 30_000 }),
    async function* hashing(chunks: AsyncIterable<Uint8Array>) {
      for await (const chunk of chunks) {
        hash.update(chunk);
        bytes += chunk.length;
        yield chunk;
      }
    },
    createWriteStream(join(downloadDir, `${name}-${file.name}`)),
  );
  const digest = hash.digest('hex');
  if (digest !== file.sha256 || bytes !== file.bytes) throw new Error(`${file.name} arrived damaged: sha256 ${digest}, expected ${file.sha256}`);
  log(`downloaded ${file.name} from ${name}: ${bytes} bytes in ${Math.round(performance.now() - started)} ms, sha256 ${digest.slice(0, 16)}... matches`);
}

// ---- The agent process -------------------------------------------------------------------------------------------

interface AgentProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
}

function startAgent(controllerUrl: string, workDir: string): AgentProcess {
  // the child runs under the same loader (tsx) as this process: fork passes process.execArgv on
  const child = fork(AGENT_SCRIPT, [controllerUrl, AGENT_NAME, workDir], { stdio: 'inherit' });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited };
}

// ---- The story ---------------------------------------------------------------------------------------------------

const workDir = await mkdtemp(join(tmpdir(), 'gw-reverse-agent-'));
let server: Server | undefined;
let agentProcess: AgentProcess | undefined;
// A bound on the whole example: whatever goes wrong, it ends (and says so) instead of hanging.
const watchdog = setTimeout(() => {
  log('FAILED: the example took longer than 30 s');
  agentProcess?.child.kill('SIGKILL');
  process.exit(1);
}, 30_000).unref();

try {
  const listenOptions = { services: [controllerService], nodeName: 'controller' };
  server = await listen('tcp://127.0.0.1:0', listenOptions);
  const url = server.url;
  log(`listening on ${url}; starting ${AGENT_NAME}, which dials in (the controller never dials an agent)`);
  let registration = nextRegistration(AGENT_NAME);
  agentProcess = startAgent(url, workDir);
  let agent = await within(registration, 10_000, `${AGENT_NAME}'s first registration`);
  await callAgent(AGENT_NAME, agent, workDir);

  log('--- step 2: the controller restarts; the agent must come back by itself');
  const pidBefore = agent.pid;
  registration = nextRegistration(AGENT_NAME);
  await server.close({ graceMs: 1_000 }); // GOAWAY to the agent: its channel sees the loss and redials
  log('controller stopped; listening again on the same address in 300 ms');
  await sleep(300);
  server = await listen(url, listenOptions);
  const restartedAt = performance.now();
  agent = await within(registration, 10_000, `${AGENT_NAME}'s registration after the controller restarted`);
  const again = await agent.session.client(Agent).info({}, { timeoutMs: 2_000 });
  log(
    `${AGENT_NAME} redialed ${Math.round(performance.now() - restartedAt)} ms after the restart and was called back: ` +
      `pid ${again.pid} (${again.pid === pidBefore ? 'the same process' : 'a new process?!'}), up ${again.uptimeMs} ms`,
  );
  if (again.pid !== pidBefore) throw new Error('the agent process changed across the controller restart');

  log('--- step 3: the agent is killed (SIGKILL) and started again');
  const dead = agent;
  registration = nextRegistration(AGENT_NAME);
  agentProcess.child.kill('SIGKILL');
  await agentProcess.exited;
  await within(dead.session.closed, 5_000, 'the killed agent\'s connection closing'); // the kernel closed its socket: at once
  const callStarted = performance.now();
  try {
    await dead.session.client(Agent).info({}, { timeoutMs: 2_000 });
    throw new Error('a call to the killed agent succeeded');
  } catch (error) {
    if (!(error instanceof RpcError)) throw error;
    log(`a call to the killed agent fails fast: ${statusName(error.code)} after ${(performance.now() - callStarted).toFixed(1)} ms`);
  }
  agentProcess = startAgent(url, workDir);
  agent = await within(registration, 10_000, `the restarted ${AGENT_NAME}'s registration`);
  log(`${AGENT_NAME} is back: pid ${dead.pid} -> ${agent.pid}`);
  await callAgent(AGENT_NAME, agent, workDir);
  log(`called ${AGENT_NAME} after its restart`);

  log('--- done: stopping the agent (SIGTERM) and the controller');
  agentProcess.child.kill('SIGTERM');
  const code = await within(agentProcess.exited, 5_000, 'the agent exiting after SIGTERM');
  if (code !== 0) throw new Error(`the agent exited with code ${code}`);
  log('agent exited with code 0; reverse-agent example OK');
} catch (error) {
  log(`FAILED: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
} finally {
  agentProcess?.child.kill('SIGKILL'); // a no-op once it has exited
  await server?.close({ graceMs: 0 });
  await rm(workDir, { recursive: true, force: true });
  clearTimeout(watchdog);
}
