/**
 * The demo's own service, served by every node: `status`, the small call the nodes make to each other in every
 * direction while the transfers run (its latency is the demo's "unary p50/p99 during the transfers").
 */
import { defineService, unary } from '../../rpc/service.js';
import { serve } from '../../rpc/handler.js';
import type { ServiceImpl } from '../../rpc/server/registry.js';

export interface StatusRequest {
  from: string;
  seq: number;
}

export interface StatusAnswer {
  node: string;
  seq: number;
  pid: number;
  uptimeMs: number;
}

export const DemoStatus = defineService('gridwire.demo.v1', {
  status: unary<StatusRequest, StatusAnswer>(),
});

/** `status` answered as node `name`. */
export function demoStatusService(name: string): ServiceImpl {
  const startedAt = performance.now();
  return serve(DemoStatus, {
    status: ({ seq }) => ({ node: name, seq, pid: process.pid, uptimeMs: Math.round(performance.now() - startedAt) }),
  });
}
