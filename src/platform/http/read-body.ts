import type { IncomingMessage } from 'node:http';

/**
 * Reads a request body of at most `limit` bytes; undefined when it is larger. An oversized body
 * is drained rather than the stream destroyed, so the error answer still reaches the client
 * (destroying the request mid-body tears down the socket before Koa can respond).
 */
export function readBodyWithin(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.resume();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}
