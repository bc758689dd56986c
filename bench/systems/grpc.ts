// @grpc/grpc-js, with bench/grpc.proto loaded at run time by @grpc/proto-loader; every call of a client goes over its
// one channel (one HTTP/2 connection).
//   echo   unary Echo(bytes) of 32 or 42 bytes (--payload), default channel and server options.
//   bulk   client streaming (Upload) and server streaming (Download) of 64 KiB `bytes` messages, writes respecting
//          each call's backpressure ('drain'), with a raised HTTP/2 window where grpc-js lets us raise it:
//          'grpc-node.flow_control_window' sets the client's initial stream window and its connection window (4 MiB:
//          what issue 12's independent harness used; 16 MiB was its best of 4, 16 and 64 MiB here before). The
//          server's receive window (what bounds uploads) has no option in grpc-js 1.14, whose Server passes only
//          maxSessionMemory and maxConcurrentStreams to node:http2; 'grpc.http2.lookahead_bytes' is a grpc-core option
//          that grpc-js ignores. Message size limits (4 MiB by default) are far above 64 KiB, so left alone.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { pump } from './io.js';
import {
  CHUNK_BYTES, MiB, checkCount, deferred, echoScenario, type EchoClient, type EchoServer, type ReplyFn,
  type Scenario, type ScenarioServer,
} from './scenario.js';

const PROTO_PATH = fileURLToPath(new URL('../grpc.proto', import.meta.url));

/** The bulk client's receive window (stream and connection): issue 12's download target is against this one. */
const FLOW_CONTROL_WINDOW = 4 * MiB;
const BULK_CHANNEL_OPTIONS: grpc.ChannelOptions = { 'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW };

function loadService(name: 'Echo' | 'Bulk'): grpc.ServiceClientConstructor {
  // longs: Number keeps uint64 counts as plain numbers (exact below 2^53 bytes)
  const def = protoLoader.loadSync(PROTO_PATH, { keepCase: true, defaults: false, longs: Number });
  const pkg = grpc.loadPackageDefinition(def).bench as grpc.GrpcObject;
  return pkg[name] as grpc.ServiceClientConstructor;
}

async function startGrpcServer(
  service: grpc.ServiceDefinition,
  handlers: grpc.UntypedServiceImplementation,
): Promise<{ target: string; close(): Promise<void> }> {
  const server = new grpc.Server();
  server.addService(service, handlers);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return {
    target: `127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

async function connectGrpc<C>(name: 'Echo' | 'Bulk', target: string, options?: grpc.ChannelOptions): Promise<C & grpc.Client> {
  const Service = loadService(name);
  const client = new Service(target, grpc.credentials.createInsecure(), options);
  await new Promise<void>((resolve, reject) => {
    client.waitForReady(Date.now() + 5000, (err) => (err ? reject(err) : resolve()));
  });
  return client as C & grpc.Client;
}

function closeClient(client: grpc.Client): Promise<void> {
  client.close();
  return Promise.resolve();
}

// ---- echo ----

interface EchoMsg {
  data: Buffer;
}
type EchoCallback = (err: grpc.ServiceError | null, res?: EchoMsg) => void;
type EchoStub = { Echo(req: EchoMsg, cb: EchoCallback): grpc.ClientUnaryCall };

function echoHandler(call: grpc.ServerUnaryCall<EchoMsg, EchoMsg>, callback: grpc.sendUnaryData<EchoMsg>): void {
  callback(null, call.request);
}

function startEchoServer(): Promise<EchoServer> {
  return startGrpcServer(loadService('Echo').service, { Echo: echoHandler });
}

async function connectEchoClient(target: string, onReply: ReplyFn, bytes: number): Promise<EchoClient> {
  const client = await connectGrpc<EchoStub>('Echo', target);
  const request: EchoMsg = { data: Buffer.alloc(bytes, 7) };
  return {
    call(t0: number): void {
      client.Echo(request, (err, res) => {
        const len = res?.data?.length ?? -1;
        onReply(err ?? (len === bytes ? null : new Error(`grpc: reply of ${len} bytes`)), t0);
      });
    },
    close: () => closeClient(client),
  };
}

// ---- bulk ----

interface ChunkMsg {
  data: Buffer;
}
interface CountMsg {
  bytes: number;
}
type CountCallback = (err: grpc.ServiceError | null, res?: CountMsg) => void;
type BulkStub = {
  Upload(cb: CountCallback): grpc.ClientWritableStream<ChunkMsg>;
  Download(req: object): grpc.ClientReadableStream<ChunkMsg>;
};
type BulkHandlers = {
  Upload: grpc.handleClientStreamingCall<ChunkMsg, CountMsg>;
  Download: grpc.handleServerStreamingCall<object, ChunkMsg>;
};

const CHUNK_MSG: ChunkMsg = { data: Buffer.alloc(CHUNK_BYTES, 0x5a) };

/** A server whose handlers are the scenario's; `done` settles when the one transfer has ended on the server. */
async function bulkServer(done: Promise<void>, handlers: BulkHandlers): Promise<ScenarioServer> {
  const server = await startGrpcServer(loadService('Bulk').service, handlers);
  return { target: server.target, finish: () => done, close: server.close };
}

const connectBulk = (target: string): Promise<BulkStub & grpc.Client> => connectGrpc<BulkStub>('Bulk', target, BULK_CHANNEL_OPTIONS);

/** The method a scenario does not use (each scenario's server registers both). */
const unimplemented = (_call: unknown, cb?: (err: Partial<grpc.ServiceError>) => void): void =>
  cb?.({ code: grpc.status.UNIMPLEMENTED });

const upload: Scenario = {
  startServer(ctx) {
    const done = deferred();
    return bulkServer(done.promise, {
      Upload(call, callback) {
        call.on('data', (msg: ChunkMsg) => ctx.received.add(msg.data.length));
        call.on('error', done.reject);
        call.on('end', () => {
          callback(null, { bytes: ctx.received.total });
          done.resolve();
        });
      },
      Download: unimplemented,
    });
  },

  async connectClient(target, ctx) {
    const client = await connectBulk(target);
    const counted = deferred<number>();
    let call: grpc.ClientWritableStream<ChunkMsg> | undefined;
    let pumping: Promise<void> = Promise.resolve();
    return {
      start() {
        call = client.Upload((err, res) => (err ? counted.reject(err) : counted.resolve(res?.bytes ?? -1)));
        pumping = pump(call, CHUNK_MSG, CHUNK_BYTES, ctx);
        pumping.catch(ctx.fail);
        return Promise.resolve();
      },
      async finish() {
        await pumping;
        call?.end();
        checkCount('grpc upload', ctx.sent.total, await counted.promise);
      },
      close: () => closeClient(client),
    };
  },
};

const download: Scenario = {
  startServer(ctx) {
    const done = deferred();
    return bulkServer(done.promise, {
      Upload: unimplemented,
      Download(call) {
        pump(call, CHUNK_MSG, CHUNK_BYTES, ctx).then(() => {
          call.end();
          done.resolve();
        }, done.reject);
      },
    });
  },

  async connectClient(target, ctx) {
    const client = await connectBulk(target);
    const ended = deferred();
    ended.promise.catch(ctx.fail);
    return {
      start() {
        const call = client.Download({});
        call.on('data', (msg: ChunkMsg) => ctx.received.add(msg.data.length));
        call.on('error', ended.reject);
        call.on('end', () => ended.resolve());
        return Promise.resolve();
      },
      finish: () => ended.promise,
      close: () => closeClient(client),
    };
  },
};

export function grpcScenarios(concurrency: number, echoBytes: number): Record<'echo' | 'bulk-upload' | 'bulk-download', Scenario> {
  return {
    echo: echoScenario({ startServer: startEchoServer, connectClient: connectEchoClient }, concurrency, echoBytes),
    'bulk-upload': upload,
    'bulk-download': download,
  };
}
