/**
 * The two services of the reverse-agent example, shared by both processes: what the controller offers (registration)
 * and what every agent offers (the calls the controller makes back on the agent's own connection).
 */
import { defineService, download, serverStream, unary } from '../../src/index.js';

/** Served by the controller: an agent announces itself on each connection it makes. */
export const Controller = defineService('example.controller.v1', {
  register: unary<{ name: string; pid: number; version: string }, { accepted: boolean }>(),
});

export interface FileInfo {
  name: string;
  bytes: number;
  sha256: string;
}

/** Served by each agent, called by the controller: the agent is behind NAT, so these calls ride the agent's dial. */
export const Agent = defineService('example.agent.v1', {
  /** Who the agent is and what it holds. */
  info: unary<Record<string, never>, { name: string; pid: number; uptimeMs: number; files: FileInfo[] }>(),
  /** The last `lines` lines of the agent's log, one message each (a server stream). */
  tailLog: serverStream<{ lines: number }, { at: string; line: string }>(),
  /** A file from the agent's disk, as raw bytes (a bulk download). */
  fetchFile: download<{ name: string }>(),
});
