// @grpc/grpc-js bulk in its best case: client streaming (Upload) and server streaming (Download) of 64 KiB `bytes`
// messages over one channel, writes respecting each call's backpressure ('drain'). Best case means raised HTTP/2
// windows where grpc-js lets us raise them: 'grpc-node.flow_control_window' sets the client's initial stream window
// and its connection window. The server's receive window (what bounds uploads) has no option in grpc-js 1.14, whose
// Server passes only maxSessionMemory and maxConcurrentStreams to node:http2; 'grpc.http2.lookahead_bytes' is a
// grpc-core option that grpc-js ignores. Message size limits (4 MiB by default) are far above 64 KiB, so left alone.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { pump } from './pump.js';
import { CHUNK_BYTES, MiB, checkCount, deferred, type Scenario, type ScenarioServer } from './scenario.js';

const PROTO_PATH = fileURLToPath(new URL('./bulk.proto', import.meta.url));

/** The client's receive window (stream and connection), as large as helped most on this machine. */
const FLOW_CONTROL_WINDOW = 16 * MiB;
const CHANNEL_OPTIONS: grpc.ChannelOptions = { 'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW };

interface ChunkMsg {
  data: Buffer;
}
interface CountMsg {
  bytes: number;
}
type CountCallback = (err: grpc.ServiceError | null, res?: CountMsg) => void;
type BulkClient = grpc.Client & {
  Upload(cb: CountCallback): grpc.ClientWritableStream<ChunkMsg>;
  Download(req: object): grpc.ClientReadableStream<ChunkMsg>;
};
type BulkHandlers = {
  Upload: grpc.handleClientStreamingCall<ChunkMsg, CountMsg>;
  Download: grpc.handleServerStreamingCall<object, ChunkMsg>;
};

const CHUNK_MSG: ChunkMsg = { data: Buffer.alloc(CHUNK_BYTES, 0x5a) };

function loadBulkService(): grpc.ServiceClientConstructor {
  // longs: Number keeps uint64 counts as plain numbers (exact below 2^53 bytes)
  const def = protoLoader.loadSync(PROTO_PATH, { keepCase: true, defaults: false, longs: Number });
  const pkg = grpc.loadPackageDefinition(def).benchbulk as grpc.GrpcObject;
  return pkg.Bulk as grpc.ServiceClientConstructor;
}

async function startGrpcServer(handlers: BulkHandlers): Promise<{ target: string; close(): Promise<void> }> {
  const server = new grpc.Server();
  server.addService(loadBulkService().service, handlers);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return {
    target: `127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

async function connectGrpc(target: string): Promise<BulkClient> {
  const Bulk = loadBulkService();
  const client = new Bulk(target, grpc.credentials.createInsecure(), CHANNEL_OPTIONS) as unknown as BulkClient;
  await new Promise<void>((resolve, reject) => {
    client.waitForReady(Date.now() + 5000, (err) => (err ? reject(err) : resolve()));
  });
  return client;
}

function closeClient(client: BulkClient): Promise<void> {
  client.close();
  return Promise.resolve();
}

/** A server whose handlers are the scenario's; `done` settles when the one transfer has ended on the server. */
async function serverSide(done: Promise<void>, handlers: BulkHandlers): Promise<ScenarioServer> {
  const server = await startGrpcServer(handlers);
  return { target: server.target, finish: () => done, close: server.close };
}

/** The method a scenario does not use (each scenario's server registers both). */
const unimplemented = (_call: unknown, cb?: (err: Partial<grpc.ServiceError>) => void): void =>
  cb?.({ code: grpc.status.UNIMPLEMENTED });

const upload: Scenario = {
  startServer(ctx) {
    const done = deferred();
    return serverSide(done.promise, {
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
    const client = await connectGrpc(target);
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
    return serverSide(done.promise, {
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
    const client = await connectGrpc(target);
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

export const grpcScenarios = { 'bulk-upload': upload, 'bulk-download': download } as const;
