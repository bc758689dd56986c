/**
 * The two services of the demo: a controller that agents register with, and an agent the controller can call
 * back on the same connection.
 */
import { defineService, unary } from '../../src/index.js';

export const Controller = defineService('demo.Controller', {
  register: unary<{ name: string; cores: number }, { welcome: string; agentsKnown: number }>(),
  report: unary<{ name: string; load: number }, { ok: boolean }>(),
});

export const Agent = defineService('demo.Agent', {
  status: unary<Record<string, never>, { name: string; uptimeMs: number; pid: number }>(),
  runTask: unary<{ task: string; sleepMs: number }, { task: string; tookMs: number }>(),
  blob: unary({ codec: 'raw' }),
});
