// The bench's one worker process, started only by processes.ts (under tsx, or compiled to plain JS for the memory and
// fleet suites) with one argument: the JSON of a WorkerSpec (messages.ts). The role says what it runs:
//   server | client            one side of a measured pair run, any system and scenario   (roles/side.ts)
//   mesh-node                  node n<index> of the mesh-formation fleet                   (roles/mesh-node.ts)
//   load-only                  import the gridwire library and exit (mesh-formation's start-up baseline)
//   conn-server | conn-client  the idle-connection-rss fleet                               (roles/conn.ts)
//   dos-server | dos-canary | dos-attacker   the dos suite's processes                  (roles/dos.ts)
// The role's module is imported only once the role is known, so a mesh node loads little more than the library.
import type { WorkerSpec } from './messages.js';
import { fail } from './roles/child.js';

async function main(): Promise<void> {
  const json = process.argv[2];
  const spec = json === undefined ? undefined : (JSON.parse(json) as WorkerSpec);
  // load-only is spawned bare (no IPC), many at once, and timed from spawn to exit: nothing but the import
  if (spec?.role === 'load-only') {
    await import(spec.library);
    return;
  }
  if (process.send === undefined || spec === undefined) {
    console.error('bench/worker.ts is started by bench/run.ts (it needs the fork IPC channel and a WorkerSpec)');
    process.exit(2);
  }
  process.on('disconnect', () => process.exit(1)); // the orchestrator is gone: do not linger
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
  switch (spec.role) {
    case 'server':
    case 'client':
      return (await import('./roles/side.js')).runSide(spec);
    case 'mesh-node':
      return (await import('./roles/mesh-node.js')).runMeshNode(spec);
    case 'conn-server':
    case 'conn-client':
      return (await import('./roles/conn.js')).runConn(spec);
    case 'dos-server':
    case 'dos-canary':
    case 'dos-attacker':
      return (await import('./roles/dos.js')).runDos(spec);
  }
}

main().catch(fail);
