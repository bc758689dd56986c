/**
 * The package as its users compile against it: the declarations `npm run build` publishes (tsconfig.build.json, with
 * stripInternal), laid out as `node_modules/gridwire` in a temp dir, and consumer programs compiled against them the
 * way a user's project would (strict, NodeNext, skipLibCheck false). `tsc` on the sources cannot see what stripping
 * does: a phantom type field marked internal turned every handler's request and response into `never` for users.
 *
 * The consumers: the compile-only checks of test/types and test/rpc, their import of the sources rewritten to
 * `gridwire`. Each test asserts that one consumer file compiles with no error (an unused `@ts-expect-error` is one).
 * Besides: every published .d.ts typechecks (a class whose `implements` members were stripped did not), and what a
 * user reaches from index.d.ts stops short of the core session.
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
 * A user's program: what the README shows, and what a user must not be able to do (each `@ts-expect-error` line
 * fails the compile if it compiles).
 */
const CONSUMER = `
import { createSession, defineService, Mesh, MeshPeer, serve, unary, type RpcSession, type ServiceImpl } from 'gridwire';

const Calc = defineService('calc.v1', { add: unary<{ a: number; b: number }, { sum: number }>() });
export const calc: ServiceImpl = serve(Calc, { add: ({ a, b }) => ({ sum: a + b }) });

// only serve() makes a ServiceImpl: a hand-made one would crash the registry
// @ts-expect-error a ServiceImpl not made by serve()
export const handMade: ServiceImpl = { service: Calc };

// only a Mesh makes its peers (its context is internal)
const mesh = new Mesh({ name: 'n1', peers: { n2: 'tcp://127.0.0.1:7001' } });
export const n2: MeshPeer = mesh.peer('n2');
declare const anything: any; // so that nothing but the constructor's visibility can fail the next line
// @ts-expect-error MeshPeer has no public constructor
export const madeByHand = new MeshPeer(anything, anything, anything, anything, anything, anything);
export const isPeer = (value: unknown): boolean => value instanceof MeshPeer;

// the core session (frames, windows) is not reachable
export function core(session: RpcSession): unknown {
  // @ts-expect-error RpcSession keeps its core session private
  return session.core;
}
export const memory = createSession;
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
  assert.deepEqual(emitted.diagnostics.map(describe), [], 'declaration emit failed');
}

/** `dir/node_modules/gridwire` with the declarations and package.json, and its dependencies linked from ours. */
async function installPackage(dir: string): Promise<void> {
  const packageDir = join(dir, 'node_modules', 'gridwire');
  await mkdir(packageDir, { recursive: true });
  const manifest = await readFile(join(root, 'package.json'), 'utf8');
  await writeFile(join(packageDir, 'package.json'), manifest);
  emitDeclarations(join(packageDir, 'dist'));
  const { dependencies = {} } = JSON.parse(manifest) as { dependencies?: Record<string, string> };
  for (const name of [...Object.keys(dependencies), '@types/node']) {
    const link = join(dir, 'node_modules', name);
    await mkdir(dirname(link), { recursive: true });
    await symlink(join(root, 'node_modules', name), link, 'dir');
  }
}

function describe(diagnostic: ts.Diagnostic): string {
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
  return [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)].map(describe);
}

void test('the published .d.ts types handlers from their definition: a handler gets its request type, not never', { timeout: TIME_LIMIT_MS }, () => {
  assert.deepEqual(errorsIn('types/define-service.check.ts'), []);
});

void test('the published .d.ts types both sides of a validated method (schema input and output types)', { timeout: TIME_LIMIT_MS }, () => {
  assert.deepEqual(errorsIn('rpc/schema-types.check.ts'), []);
});

void test('every published .d.ts typechecks with skipLibCheck false (no class left without the members its interface needs)', { timeout: TIME_LIMIT_MS }, () => {
  const errors = [...declarations.getSyntacticDiagnostics(), ...declarations.getGlobalDiagnostics(), ...declarations.getSemanticDiagnostics()];
  assert.deepEqual(errors.map(describe), []);
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

void test("a user's program compiles against the published .d.ts, and cannot make a MeshPeer or a ServiceImpl by hand nor reach the core session", { timeout: TIME_LIMIT_MS }, () => {
  assert.deepEqual(errorsIn('consumer.ts'), []);
});
