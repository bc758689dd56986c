/**
 * The demo's agent process: dials the controller, serves the Agent service on that same connection, and calls the
 * controller. Started by demo.ts with the controller's address as its argument.
 */
import { connect, serve } from '../../src/index.js';
import { Agent, Controller } from './demo-services.js';

const url = process.argv[2];
if (url === undefined) throw new Error('usage: demo-agent <controller url>');
const started = Date.now();
const name = `agent-${process.pid}`;

const agent = serve(Agent, {
  status: () => ({ name, uptimeMs: Date.now() - started, pid: process.pid }),
  async runTask({ task, sleepMs }, ctx) {
    const t0 = Date.now();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, sleepMs);
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        console.log(`[agent] task ${task} aborted: ${(ctx.signal.reason as Error).message}`);
        reject(ctx.signal.reason as Error);
      });
    });
    return { task, tookMs: Date.now() - t0 };
  },
  blob: (bytes) => bytes.reverse(),
});

const session = await connect(url, { services: [agent], nodeName: name });
const controller = session.client(Controller);
const hello = await controller.register({ name, cores: 2 });
console.log(`[agent] registered: ${hello.welcome} (controller knows ${hello.agentsKnown} agent)`);
await controller.report({ name, load: 0.42 });
console.log('[agent] reported load 0.42');
// stay until the controller closes the connection
const why = await session.closed;
console.log(`[agent] session closed${why ? `: ${why.message}` : ' cleanly'}`);
