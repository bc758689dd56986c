/**
 * How `gridwire inspect` shows a snapshot to a human: a header, the stalled streams first (each marked `!`, with the
 * slow side), a table of connections with each one's streams under it (stalled first and marked), and the calls in
 * flight by method. Plain text, columns padded to their widest cell; knows nothing of connections (it is handed the
 * snapshot the node answered).
 */
import type { InspectSnapshot, InspectStream } from '../rpc/inspect/inspect-snapshot.js';
import { formatBytes, table } from './format.js';

const bytes = (n: number): string => formatBytes(n, 'compact');

/** `ms` as ms below a second, else seconds, minutes, hours. */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined) return '-';
  if (ms < 1) return `${ms.toFixed(2)}ms`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
  return `${Math.floor(ms / 3_600_000)}h${Math.round((ms % 3_600_000) / 60_000)}m`;
}

const SLOW_SIDE = { peer: 'the peer (it does not read what it asked for)', local: 'this node (its reader takes nothing)' } as const;

/** The snapshot as text, ending with a line feed. */
export function renderSnapshot(snapshot: InspectSnapshot): string {
  const lines: string[] = [];
  const node = snapshot.node === '' ? '(unnamed node)' : `node ${snapshot.node}`;
  lines.push(`${node}, pid ${snapshot.pid}, at ${snapshot.takenAt}; a stream blocked on credit for ${formatMs(snapshot.stallThresholdMs)} is stalled`);
  lines.push('');
  if (snapshot.stalled.length === 0) {
    lines.push('stalled streams: none');
  } else {
    lines.push(`STALLED STREAMS (${snapshot.stalled.length})`);
    lines.push(...table([
      ['', 'CONNECTION', 'STREAM', 'METHOD', 'DIRECTION', 'BLOCKED', 'SLOW SIDE'],
      ...snapshot.stalled.map((s) => ['!', s.connection, String(s.streamId), s.method, s.direction, formatMs(s.blockedMs), SLOW_SIDE[s.slowSide]]),
    ]));
  }
  lines.push('');
  const hidden = snapshot.connectionsNotListed > 0 ? ` (${snapshot.connectionsNotListed} more not listed)` : '';
  lines.push(`CONNECTIONS (${snapshot.connections.length})${hidden}`);
  if (snapshot.connections.length === 0) lines.push('  none');
  for (const connection of snapshot.connections) {
    const peer = connection.peer;
    const identity = peer.identity === undefined ? '' : `  cert ${peer.identity.subject} ${peer.identity.fingerprint256.slice(0, 23)}...`;
    const goaway = connection.peerGoaway === undefined ? '' : `  peer GOAWAY: ${connection.peerGoaway}`;
    lines.push(
      `- ${peer.nodeName || '(unnamed)'}${peer.label ? ` [${peer.label}]` : ''} ${peer.address}  ${connection.role}  ${connection.phase}${goaway}` +
        `  age ${formatMs(connection.ageMs)}  rtt ${formatMs(connection.rttMs)}  in ${bytes(connection.bytesIn)}  out ${bytes(connection.bytesOut)}` +
        `  send credit ${bytes(connection.sendCredit)}  streams ${connection.streamsOpen}${identity}`,
    );
    if (connection.streams.length === 0) continue;
    lines.push(...table([
      ['', 'STREAM', 'METHOD', 'DIRECTION', 'KIND', 'STATE', 'SEND CREDIT', 'RECV WINDOW', 'QUEUED', 'UNREAD', 'BLOCKED', 'BLOCKED TOTAL', 'AGE'],
      ...connection.streams.map(streamRow),
    ], { indent: '    ' }));
    if (connection.streamsNotListed > 0) lines.push(`    (${connection.streamsNotListed} more streams not listed)`);
  }
  lines.push('');
  const inFlight = Object.entries(snapshot.inFlight).sort(([a], [b]) => a.localeCompare(b));
  if (inFlight.length === 0) {
    lines.push('calls in flight: none');
  } else {
    lines.push('CALLS IN FLIGHT');
    lines.push(...table([['METHOD', 'MADE', 'SERVED'], ...inFlight.map(([method, n]) => [method, String(n.made), String(n.served)])], { indent: '  ' }));
  }
  return `${lines.join('\n')}\n`;
}

function streamRow(stream: InspectStream): string[] {
  return [
    stream.stalled === undefined ? '' : '!',
    String(stream.id),
    stream.method,
    stream.direction,
    stream.kind ?? '-',
    stream.state,
    `${bytes(stream.sendCredit)}/${stream.sendMessageCredit} msg`,
    `${bytes(stream.receiveWindow)}/${stream.receiveMessageWindow} msg`,
    bytes(stream.queuedBytes),
    String(stream.unconsumed),
    stream.blockedMs > 0 ? formatMs(stream.blockedMs) : '-',
    stream.blockedTotalMs > 0 ? formatMs(stream.blockedTotalMs) : '-',
    formatMs(stream.ageMs),
  ];
}
