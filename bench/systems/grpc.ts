// @grpc/grpc-js unary Echo(bytes), with bench/echo.proto loaded at run time by @grpc/proto-loader.
// Default channel and server options; all calls of a client go over its one channel (one HTTP/2 connection).
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PAYLOAD_BYTES, type BenchClient, type BenchServer, type BenchSystem, type ReplyFn } from './types.js';

const PROTO_PATH = fileURLToPath(new URL('../echo.proto', import.meta.url));

interface EchoMsg {
  data: Buffer;
}
type EchoCallback = (err: grpc.ServiceError | null, res?: EchoMsg) => void;
type EchoClient = grpc.Client & { Echo(req: EchoMsg, cb: EchoCallback): grpc.ClientUnaryCall };

function loadEchoService(): grpc.ServiceClientConstructor {
  const def = protoLoader.loadSync(PROTO_PATH, { keepCase: true, defaults: false });
  const pkg = grpc.loadPackageDefinition(def).bench as grpc.GrpcObject;
  return pkg.Echo as grpc.ServiceClientConstructor;
}

function echoHandler(call: grpc.ServerUnaryCall<EchoMsg, EchoMsg>, callback: grpc.sendUnaryData<EchoMsg>): void {
  callback(null, call.request);
}

async function startServer(): Promise<BenchServer> {
  const Echo = loadEchoService();
  const server = new grpc.Server();
  server.addService(Echo.service, { Echo: echoHandler });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return {
    target: `127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

async function connectClient(target: string, onReply: ReplyFn): Promise<BenchClient> {
  const Echo = loadEchoService();
  const client = new Echo(target, grpc.credentials.createInsecure()) as unknown as EchoClient;
  await new Promise<void>((resolve, reject) => {
    client.waitForReady(Date.now() + 5000, (err) => (err ? reject(err) : resolve()));
  });
  const request: EchoMsg = { data: Buffer.alloc(PAYLOAD_BYTES, 7) };
  return {
    call(t0: number): void {
      client.Echo(request, (err, res) => {
        const len = res?.data?.length ?? -1;
        onReply(err ?? (len === PAYLOAD_BYTES ? null : new Error(`grpc: reply of ${len} bytes`)), t0);
      });
    },
    close: () => {
      client.close();
      return Promise.resolve();
    },
  };
}

export const grpcSystem: BenchSystem = { startServer, connectClient };
