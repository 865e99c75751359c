import { createServer, request, type IncomingHttpHeaders, type RequestListener } from 'node:http';
import { duplexPair } from 'node:stream';

/**
 * One HTTP request to a request handler of this very process: both ends speak real HTTP (Node's
 * parser on each side of an in-memory stream pair), so the handler sees exactly what a network
 * client would send, yet nothing listens on a port and nothing leaves the process. The
 * management page uses it to exchange its authorization code at this server's token endpoint
 * without depending on the server reaching its own public URL.
 */

export interface InProcessRequest {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface InProcessResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Far more than a token response needs; a bigger answer is not what we asked for. */
const MAX_RESPONSE = 256 * 1024;
const TIMEOUT_MS = 10_000;

export function inProcessClient(handler: () => RequestListener, host: string): (req: InProcessRequest) => Promise<InProcessResponse> {
  const server = createServer((req, res) => handler()(req, res));
  return (input) =>
    new Promise<InProcessResponse>((resolve, reject) => {
      const [client, serverSide] = duplexPair();
      server.emit('connection', serverSide);
      const body = input.body ?? '';
      const req = request(
        {
          createConnection: () => client as never,
          method: input.method,
          path: input.path,
          headers: { host, connection: 'close', 'content-length': String(Buffer.byteLength(body)), ...input.headers },
          timeout: TIMEOUT_MS,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE) {
              req.destroy(new Error('in-process response too large'));
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () => {
            client.destroy();
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('in-process request timed out')));
      req.on('error', (err) => {
        client.destroy();
        reject(err);
      });
      req.end(body);
    });
}
