/**
 * A node of the mesh example as its own process: `node-process.ts <name> <socket dir> <node names...>`. Starts the
 * node, waits until its connection to every peer is up, tells the parent (IPC), and stops on SIGTERM.
 */
import { startNode } from './node.js';

const [name, socketDir, ...names] = process.argv.slice(2);
if (name === undefined || socketDir === undefined || names.length === 0) throw new Error('usage: node-process.ts <name> <socket dir> <node names...>');

const log = (line: string): void => console.log(`[${name}] ${line}`);
const addresses = Object.fromEntries(names.map((n) => [n, `unix://${socketDir}/${n}.sock`]));
const node = await startNode(name, addresses, log);
process.send?.('ready', () => process.disconnect()); // the IPC channel is not needed afterwards

process.once('SIGTERM', () => {
  log('SIGTERM: stopping');
  void node.stop();
});
