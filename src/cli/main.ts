#!/usr/bin/env node
/**
 * The `gridwire` command: finds the subcommand, runs it with the process's streams, and exits with its code.
 * Commands are loaded on first use, so `gridwire ping` does not load the demo. Each lives in commands/<name>.ts.
 */
import { pathToFileURL } from 'node:url';
import { realpathSync } from 'node:fs';
import type { CliCommand, CliIo } from './command.js';
import { EXIT } from './exit-codes.js';
import { describeError, printError } from './errors.js';

/** Every command, in the order `gridwire --help` lists them. */
export const COMMANDS: Record<string, () => Promise<{ command: CliCommand }>> = {
  demo: () => import('./commands/demo.js'),
  serve: () => import('./commands/serve.js'),
  send: () => import('./commands/send.js'),
  recv: () => import('./commands/recv.js'),
  call: () => import('./commands/call.js'),
  ping: () => import('./commands/ping.js'),
  inspect: () => import('./commands/inspect.js'),
};

async function overview(): Promise<string> {
  const lines = ['usage: gridwire <command> [flags]   (gridwire <command> --help for its flags)', '', 'commands:'];
  for (const [name, load] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(9)} ${(await load()).command.summary}`);
  lines.push('', 'exit codes: 0 ok, 1 a check failed, 2 usage, 3 unavailable or cut (retry may help),',
    '            4 refused (TLS, token, authorization), 5 incompatible peer, 6 a call failed, 130 interrupted');
  return lines.join('\n');
}

/** Runs `gridwire ...args` with `io`; resolves with the exit code (never rejects). */
export async function runCli(args: string[], io: CliIo): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(`${await overview()}\n`);
    return name === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (name === '--version') {
    const { createRequire } = await import('node:module');
    const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };
    io.stdout.write(`gridwire ${pkg.version}\n`);
    return EXIT.OK;
  }
  const load = COMMANDS[name];
  if (load === undefined) {
    io.stderr.write(`gridwire: no command ${JSON.stringify(name)}; the commands are ${Object.keys(COMMANDS).join(', ')}\n`);
    return EXIT.USAGE;
  }
  const { command } = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout.write(`${command.usage}\n`);
    return EXIT.OK;
  }
  try {
    return await command.run(rest, io);
  } catch (error) {
    if (io.signal.aborted) return EXIT.INTERRUPTED;
    const report = describeError(error);
    printError(report, io, rest.includes('--json'));
    return report.exitCode;
  }
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  const controller = new AbortController();
  const stop = (): void => {
    if (controller.signal.aborted) process.exit(EXIT.INTERRUPTED);   // a second ^C: do not wait for clean-up
    controller.abort(new Error('interrupted'));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // the reader of our output went away (`gridwire ping ADDR | head -1`): stop as for ^C, quietly, instead of dying on
  // an unhandled EPIPE with a stack trace; a command with its own handler (the demo) still sees the error too
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    if (!controller.signal.aborted) controller.abort(new Error('stdout closed'));
  });
  const io: CliIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env, signal: controller.signal };
  const code = await runCli(process.argv.slice(2), io);
  // stdout may be a pipe still draining (recv -o -): set the code and let the event loop finish writing
  process.exitCode = code;
}
