// The registry of scenarios: their names, which systems implement which, and a lazy loader, so a worker imports
// only the stack it runs (and a gridwire without the streaming API cannot break the raw and grpc-js rows).
import type { Scenario } from './scenario.js';

export const SCENARIO_NAMES = [
  'bulk-upload',
  'bulk-download',
  'unary-idle',
  'unary-under-bulk',
  'idle-streams',
  'slow-read',
] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

export const SCENARIO_SYSTEMS = ['raw', 'grpc', 'gridwire'] as const;
export type ScenarioSystem = (typeof SCENARIO_SYSTEMS)[number];

export function isScenarioName(s: string): s is ScenarioName {
  return (SCENARIO_NAMES as readonly string[]).includes(s);
}

export function isScenarioSystem(s: string): s is ScenarioSystem {
  return (SCENARIO_SYSTEMS as readonly string[]).includes(s);
}

export async function loadScenario(system: ScenarioSystem, name: ScenarioName): Promise<Scenario> {
  const table: Partial<Record<ScenarioName, Scenario>> =
    system === 'raw'
      ? (await import('./raw.js')).rawScenarios
      : system === 'grpc'
        ? (await import('./grpc.js')).grpcScenarios
        : (await import('./gridwire.js')).gridwireScenarios;
  const scenario = table[name];
  if (scenario === undefined) throw new Error(`${system} has no '${name}' scenario`);
  return scenario;
}
