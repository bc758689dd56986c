/**
 * The package as its users compile against it: the declarations `npm run build` publishes (tsconfig.build.json, with
 * stripInternal), laid out as `node_modules/gridwire` in a temp dir, and consumer programs compiled against them the
 * way a user's project would (strict, NodeNext, skipLibCheck false). `tsc` on the sources cannot see what stripping
 * does: a phantom type field marked internal turned every handler's request and response into `never` for users.
 *
 * The consumers: the README's API as a user's program (below), and the compile-only checks of test/types and
 * test/rpc with their import of the sources rewritten to `gridwire`. Each test asserts that one consumer file compiles
 * with no error (an unused `@ts-expect-error` is one). Besides: every published .d.ts typechecks (a class whose
 * `implements` members were stripped did not), and what a user reaches from index.d.ts stops short of the core session.
 * Builds the declarations in-process with the TypeScript API (a few seconds); the temp dir goes in `after`.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix, sep } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('../../', import.meta.url));
const TIME_LIMIT_MS = 60_000;

/**
 * A user's program: the README's API, typed as the README says (`Expect<Equal<...>>` lines fail the compile when a
 * type is lost to `never` or `any`), and what a user must not be able to do (each `@ts-expect-error` line fails the
 * compile if it compiles). Compiled, never run.
 */
const CONSUMER = `
import * as fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import {
  bidi, channel, clientStream, connect, createMemoryPair, createSession, defineService, download, listen, Mesh, MeshPeer,
  RpcError, serve, serverStream, Status, statusName, unary, upload,
  type BidiCall, type ClientInterceptor, type MessageStream, type RpcSession, type ServerInterceptor, type ServiceImpl,
} from 'gridwire';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;

export const Files = defineService('files.v1', {
  stat: unary<{ path: string }, { size: number }>(),
  raw: unary({ codec: 'raw' }),
});

const files = serve(Files, {
  async stat({ path }, ctx) {
    const signals: AbortSignal[] = [ctx.signal, ctx.draining];
    ctx.trailer['served-by'] = 'node-a';
    if (path === '' || signals.length === 0) throw new RpcError(Status.INVALID_ARGUMENT, 'empty path');
    return { size: path.length };
  },
  raw: (bytes) => bytes.subarray(1),
});

serve(Files, {
  stat: (request) => {
    // @ts-expect-error (a) a request field the definition does not have
    const wrong: string = request.name;
    return { size: wrong.length };
  },
  // @ts-expect-error the handler must return what the definition says
  raw: () => 'text',
});

const logCalls: ClientInterceptor = (next) => async (call) => {
  call.metadata['request-id'] ??= crypto.randomUUID();
  try { return await next(call); } finally { console.log(call.method.path, call.kind); }
};
const timeHandlers: ServerInterceptor = (next) => async (call) => {
  const started = performance.now();
  try { return await next(call); } finally { console.log(call.method.path, call.ctx.peer.nodeName, performance.now() - started); }
};

const server = await listen('tcp://127.0.0.1:7000', {
  services: [files],
  serverInterceptors: [timeHandlers],
  onSession: (s) => console.log(\`\${s.peer.nodeName} dialed in from \${s.peer.address}\`),
});
const session: RpcSession = await connect(server.url, { services: [files], nodeName: 'agent7', connectTimeoutMs: 1000, clientInterceptors: [logCalls] });
const client = session.client(Files);
const { size } = await client.stat({ path: '/' }, {
  timeoutMs: 500,
  signal: AbortSignal.timeout(1000),
  metadata: { 'request-id': 'r1' },
  onTrailer: (md) => console.log(md['served-by']),
});
export type T1 = Expect<Equal<typeof size, number>>;
export type T2 = Expect<Equal<Awaited<ReturnType<typeof client.raw>>, Uint8Array>>;
// @ts-expect-error (a) the caller sends the definition's request type
await client.stat({ paht: '/' });
for (const agent of server.sessions) await agent.client(Files).stat({ path: '/' });
try {
  await client.stat({ path: '' });
} catch (e) {
  if (e instanceof RpcError) console.log(statusName(e.code), e.rawMessage, e.retrySafe, e.metadata);
}
const name: string = statusName(Status.UNAVAILABLE);
// @ts-expect-error Status maps names to numbers only: Status[3] is not a name
console.log(Status[3], name);
const rtt: number = await session.ping();
console.log(rtt, session.rttMs, session.peer.nodeName, session.role, session.streamCount, session.goawayReason);
const closedWith: Error | undefined = await Promise.race([session.closed, Promise.resolve(undefined)]);
console.log(closedWith);

const Store = defineService('store.v1', {
  watch: serverStream<{ prefix: string }, { key: string }>(),
  total: clientStream<number, number>(),
  chat: bidi<string, string>(),
  put: upload<{ name: string }, { bytes: number }>(),
  get: download<{ name: string }>(),
});
const store = serve(Store, {
  async *watch({ prefix }, ctx) { while (!ctx.draining.aborted) yield { key: \`\${prefix}/a\` }; },
  async total(numbers) { let t = 0; for await (const n of numbers) t += n; return t; },
  async *chat(lines) { for await (const line of lines) yield line.toUpperCase(); },
  async put({ name }, body) {
    await pipeline(body, fs.createWriteStream(name));
    return { bytes: fs.statSync(name).size };
  },
  get: ({ name }) => fs.createReadStream(name),
});
const c = session.client(Store);
for await (const { key } of c.watch({ prefix: 'x' }, { timeoutMs: 5000 })) { if (key) break; }
const total: number = await c.total([1, 2, 3]);
const chat: BidiCall<string, string> = c.chat();
await chat.send('hi'); chat.end();
for await (const line of chat) console.log(line.toUpperCase());
for await (const line of c.chat(['a', 'b'])) console.log(line.toUpperCase());
const put: { bytes: number } = await c.put({ name: 'f' }, fs.createReadStream('f'));
await pipeline(c.get({ name: 'f' }), fs.createWriteStream('copy'));
export type T3 = Expect<Equal<ReturnType<typeof c.watch>, MessageStream<{ key: string }>>>;
console.log(total, put.bytes);
// @ts-expect-error (a) a streaming request of the wrong type
c.total(['one']);

const ch = channel('tcp://10.0.0.2:7000', { services: [store], reconnect: { initialDelayMs: 500, maxDelayMs: 30_000 } });
ch.on('state', ({ state, error, delayMs }) => console.log(state, error?.message, delayMs));
await ch.client(Files).stat({ path: '/' }, { waitForReady: true, timeoutMs: 5000 });
const ready: RpcSession = await ch.whenReady({ timeoutMs: 1000 });
console.log(ready.peer, ch.state, ch.rttMs);
await ch.close({ graceMs: 0 });

const mesh = new Mesh({
  name: 'n1', listen: 'tcp://0.0.0.0:7001', services: [files],
  peers: { n2: 'tcp://n2:7001', agent7: null },
  dataLane: true, connectionsPerPeer: 1, clientInterceptors: [logCalls],
});
await mesh.start();
const n2: MeshPeer = mesh.peer('n2');
n2.on('state', ({ state, lane }) => console.log('n2', lane, state, n2.state, n2.rttMs));
await n2.client(Files).stat({ path: '/' }, { waitForReady: true, timeoutMs: 5000 });
mesh.addPeer('n4', 'tcp://n4:7001');
await mesh.removePeer('agent7');
await mesh.stop();

const [left, right] = createMemoryPair();
const acceptor = createSession(right, 'acceptor', { services: [files] });
const dialer = createSession(left, 'dialer');
await Promise.all([acceptor.ready, dialer.ready]);
await dialer.close();
await session.close();
await server.close({ graceMs: 100 });

// only serve() makes a ServiceImpl: a hand-made one would crash the registry
// @ts-expect-error a ServiceImpl not made by serve()
export const handMade: ServiceImpl = { service: Files };

// only a Mesh makes its peers (their context is internal)
declare const anything: any; // so that nothing but the constructor's visibility can fail the next line
// @ts-expect-error (c) MeshPeer has no public constructor
export const madeByHand = new MeshPeer(anything, anything, anything, anything, anything, anything);
export const isPeer = (value: unknown): boolean => value instanceof MeshPeer;

// @ts-expect-error (b) RpcSession keeps its core session (frames, windows) private
console.log(session.core);
`;

/** Consumer files (path in the consumer project -> source): checks of this repository, importing `gridwire`. */
async function consumerFiles(): Promise<Record<string, string>> {
  const fromRepo = async (path: string): Promise<string> => readFile(join(root, 'test', path), 'utf8');
  const asUser = (source: string, path: string): string => {
    assert.ok(source.includes(`from '../../src/index.js'`), `${path} no longer imports ../../src/index.js: update this test`);
    return source.replaceAll(`from '../../src/index.js'`, `from 'gridwire'`);
  };
  return {
    'types/define-service.check.ts': asUser(await fromRepo('types/define-service.check.ts'), 'types/define-service.check.ts'),
    'rpc/schema-types.check.ts': asUser(await fromRepo('rpc/schema-types.check.ts'), 'rpc/schema-types.check.ts'),
    'fixtures/transforming-schemas.ts': await fromRepo('fixtures/transforming-schemas.ts'),
    'consumer.ts': CONSUMER,
  };
}

/** Emits the published declarations into `outDir`, as `npm run build` would (declarations only). */
function emitDeclarations(outDir: string): void {
  const configPath = join(root, 'tsconfig.build.json');
  const { config, error } = ts.readConfigFile(configPath, (path) => ts.sys.readFile(path));
  assert.equal(error, undefined, 'tsconfig.build.json could not be read');
  const overrides = { outDir, noEmit: false, emitDeclarationOnly: true, declarationMap: false, sourceMap: false };
  const parsed = ts.parseJsonConfigFileContent(config, ts.sys, root, overrides, configPath);
  assert.ok(parsed.options.stripInternal, 'the build strips @internal declarations: what this test is about');
  const program = ts.createProgram(parsed.fileNames, parsed.options);
  const emitted = program.emit(undefined, undefined, undefined, true);
  assert.deepEqual(emitted.diagnostics.map(formatDiagnostic), [], 'declaration emit failed');
}

/** `dir/node_modules/gridwire` with the declarations and package.json, and its dependencies linked from ours. */
async function installPackage(dir: string): Promise<void> {
  const packageDir = join(dir, 'node_modules', 'gridwire');
  await mkdir(packageDir, { recursive: true });
  const manifest = await readFile(join(root, 'package.json'), 'utf8');
  await writeFile(join(packageDir, 'package.json'), manifest);
  emitDeclarations(join(packageDir, 'dist'));
  // the optional peers too: a user who imports gridwire/opentelemetry has @opentelemetry/api installed
  const { dependencies = {}, peerDependencies = {} } = JSON.parse(manifest) as { dependencies?: Record<string, string>; peerDependencies?: Record<string, string> };
  for (const name of [...Object.keys(dependencies), ...Object.keys(peerDependencies), '@types/node']) {
    const link = join(dir, 'node_modules', name);
    await mkdir(dirname(link), { recursive: true });
    await symlink(join(root, 'node_modules', name), link, 'dir');
  }
}

function formatDiagnostic(diagnostic: ts.Diagnostic): string {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
  if (diagnostic.file === undefined || diagnostic.start === undefined) return message;
  const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
  return `${diagnostic.file.fileName}:${line + 1}:${character + 1}: ${message}`;
}

/** What a user's strict project would say; skipLibCheck false, so the published .d.ts files are checked too. */
function consumerOptions(dir: string): ts.CompilerOptions {
  return {
    strict: true,
    noEmit: true,
    skipLibCheck: false,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2023.d.ts'],
    types: ['node'],
    typeRoots: [join(dir, 'node_modules', '@types')],
  };
}

let dir: string;
/** The consumer files, and the declarations they reach from `gridwire`. */
let program: ts.Program;
/** Every published declaration file, reached or not. */
let declarations: ts.Program;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gridwire-dts-'));
  await installPackage(dir);
  const files = await consumerFiles();
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  for (const [path, source] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), source);
  }
  program = ts.createProgram(Object.keys(files).map((path) => join(dir, path)), consumerOptions(dir));
  const published = ts.sys.readDirectory(join(dir, 'node_modules', 'gridwire', 'dist'), ['.d.ts']);
  declarations = ts.createProgram(published, consumerOptions(dir));
}, { timeout: TIME_LIMIT_MS });

after(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** Every error tsc reports for the consumer file `path` (syntax, semantics, unused `@ts-expect-error`). */
function errorsIn(path: string): string[] {
  const file = program.getSourceFile(join(dir, path));
  assert.ok(file, `${path} is not in the consumer program`);
  return [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)].map(formatDiagnostic);
}

void test('the published .d.ts types handlers from their definition: a handler gets its request type, not never', { timeout: TIME_LIMIT_MS }, () => {
  assert.deepEqual(errorsIn('types/define-service.check.ts'), []);
});

void test('the published .d.ts types both sides of a validated method (schema input and output types)', { timeout: TIME_LIMIT_MS }, () => {
  assert.deepEqual(errorsIn('rpc/schema-types.check.ts'), []);
});

void test('every published .d.ts typechecks with skipLibCheck false (no class left without the members its interface needs)', { timeout: TIME_LIMIT_MS }, () => {
  const errors = [...declarations.getSyntacticDiagnostics(), ...declarations.getGlobalDiagnostics(), ...declarations.getSemanticDiagnostics()];
  assert.deepEqual(errors.map(formatDiagnostic), []);
});

void test('the declarations a user reaches from index.d.ts do not include the core session (frames, windows, streams)', { timeout: TIME_LIMIT_MS }, () => {
  const dist = join(dir, 'node_modules', 'gridwire', 'dist') + sep;
  const reached = program.getSourceFiles().filter((file) => file.fileName.startsWith(dist)).map((file) => file.fileName.slice(dist.length));
  assert.ok(reached.includes('index.d.ts'), `the consumers do not reach gridwire's index.d.ts: ${reached.join(', ')}`);
  assert.ok(!reached.includes('session/session.d.ts'), `index.d.ts reaches session/session.d.ts, through: ${importersOf('session/session.d.ts', reached)}`);
});

/** The reached declaration files that import `target`, for the failure message. */
function importersOf(target: string, reached: readonly string[]): string {
  const dist = join(dir, 'node_modules', 'gridwire', 'dist');
  const name = target.replace(/\.d\.ts$/, '.js');
  return reached.filter((path) => {
    const text = program.getSourceFile(join(dist, path))?.text ?? '';
    const relative = posix.relative(posix.dirname(path), name);
    return text.includes(`'${relative.startsWith('.') ? relative : `./${relative}`}'`);
  }).join(', ');
}

void test("the README's API compiles against the published .d.ts, typed; a user cannot make a MeshPeer or a ServiceImpl by hand nor reach the core session", { timeout: TIME_LIMIT_MS }, () => {
  assert.deepEqual(errorsIn('consumer.ts'), []);
});
