/**
 * What a peer learns of a failed file operation on the serving side: a fixed sentence and the errno code only
 * ("the receiver could not write: ENOSPC"), never the server's paths or the system's message; the detail goes to the
 * server's own log. ENOSPC and EDQUOT are RESOURCE_EXHAUSTED (try later, elsewhere), anything else INTERNAL.
 */
import { RpcError } from '../../rpc/rpc-error.js';
import { Status } from '../../wire/constants.js';

/** `error` as the peer may see it: an RpcError passes as it is; a file system error becomes a fixed message. */
export function peerSafeError(error: unknown, doing: 'read' | 'write', log: (line: string) => void, where: string): RpcError {
  if (error instanceof RpcError) return error;
  const raw = (error as NodeJS.ErrnoException | undefined)?.code;
  const code = typeof raw === 'string' && /^E[A-Z0-9]{1,15}$/.test(raw) ? raw : 'EIO';
  log(`${where}: could not ${doing}: ${error instanceof Error ? error.message : String(error)}`);
  const status = code === 'ENOSPC' || code === 'EDQUOT' ? Status.RESOURCE_EXHAUSTED : Status.INTERNAL;
  return new RpcError(status, `the ${doing === 'write' ? 'receiver' : 'server'} could not ${doing}: ${code}`);
}
