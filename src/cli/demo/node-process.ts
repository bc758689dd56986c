/**
 * The orchestrator's handle on one demo node process: spawns node.ts with this process's node binary and execArgv
 * (compiled or under tsx alike), sends it messages, waits for its answers, keeps the tail of its stderr for a failure
 * report, and kills it. Knows the IPC messages, not what the demo does with them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FromNode, NodeConfig, ToNode } from './messages.js';

/** node.ts next to this file: node.js once compiled, node.ts when run from source. */
const NODE_MAIN = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './node.ts' : './node.js', import.meta.url));
/** Lines of a node's stderr kept for the report of a failed run. */
const STDERR_LINES = 20;

type Waiter = { match: (message: FromNode) => boolean; resolve: (message: FromNode) => void };

export class NodeProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly waiters = new Set<Waiter>();
  private readonly stderrLines: string[] = [];
  private stderrPartial = '';

  constructor(readonly config: NodeConfig, onMessage: (node: NodeProcess, message: FromNode) => void) {
    // a debugger flag would make every node fight for the parent's inspector port
    const execArgv = process.execArgv.filter((arg) => !arg.startsWith('--inspect'));
    this.child = spawn(process.execPath, [...execArgv, NODE_MAIN, JSON.stringify(config)], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'json',
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    this.child.on('error', (error) => this.keepStderr(`spawn failed: ${error.message}\n`));
    this.child.stderr!.setEncoding('utf8').on('data', (text: string) => this.keepStderr(text));
    this.child.on('message', (message: FromNode) => {
      onMessage(this, message);
      for (const waiter of [...this.waiters]) {
        if (!waiter.match(message)) continue;
        this.waiters.delete(waiter);
        waiter.resolve(message);
      }
    });
  }

  get name(): string {
    return this.config.name;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last lines the node wrote on its stderr. */
  get stderrTail(): string[] {
    return this.stderrPartial === '' ? [...this.stderrLines] : [...this.stderrLines, this.stderrPartial];
  }

  send(message: ToNode): void {
    if (this.child.connected) this.child.send(message);
  }

  /**
   * The next message of type `t` (that `match` accepts); rejects after `timeoutMs`, when the node exits first, or when
   * `signal` aborts, with a message naming what was awaited.
   */
  next<T extends FromNode['t']>(t: T, what: string, timeoutMs: number, signal: AbortSignal, match: (m: Extract<FromNode, { t: T }>) => boolean = () => true): Promise<Extract<FromNode, { t: T }>> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        match: (m) => m.t === t && match(m as Extract<FromNode, { t: T }>),
        resolve: (m) => settle(() => resolve(m as Extract<FromNode, { t: T }>)),
      };
      const timer = setTimeout(() => settle(() => reject(new Error(`node ${this.name} did not ${what} within ${timeoutMs / 1000} s`))), timeoutMs);
      const onAbort = (): void => settle(() => reject(signal.reason as Error));
      const onExit = (): void => settle(() => reject(new Error(`node ${this.name} exited before it could ${what}${this.lastWords()}`)));
      const settle = (finish: () => void): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.child.off('exit', onExit);
        this.waiters.delete(waiter);
        finish();
      };
      if (signal.aborted) return onAbort();
      if (!this.running) return onExit();
      signal.addEventListener('abort', onAbort, { once: true });
      this.child.once('exit', onExit);
      this.waiters.add(waiter);
    });
  }

  /** Sends `message` and waits for the answer of type `t`. */
  ask<T extends FromNode['t']>(message: ToNode, t: T, what: string, timeoutMs: number, signal: AbortSignal): Promise<Extract<FromNode, { t: T }>> {
    const answer = this.next(t, what, timeoutMs, signal);
    this.send(message);
    return answer;
  }

  /** SIGKILL, if it still runs. */
  kill(): void {
    if (this.running) this.child.kill('SIGKILL');
  }

  /** ": <its last stderr line>" when it wrote one, for an error message. */
  lastWords(): string {
    const last = this.stderrTail.filter((line) => line.trim() !== '').at(-1);
    return last === undefined ? '' : `: ${last.trim()}`;
  }

  private keepStderr(text: string): void {
    const lines = (this.stderrPartial + text).split('\n');
    this.stderrPartial = lines.pop()!;
    this.stderrLines.push(...lines);
    if (this.stderrLines.length > STDERR_LINES) this.stderrLines.splice(0, this.stderrLines.length - STDERR_LINES);
  }
}
