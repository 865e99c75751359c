import { createHash, X509Certificate } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { selfSignedCertificate } from '../../support/certificate.js';

export interface TestCertificate {
  certFile: string;
  keyFile: string;
  /** PEM of the self-signed certificate (its own CA). */
  pem: string;
  /** base64 SHA-256 of its public key, for Chromium's --ignore-certificate-errors-spki-list. */
  spkiHash: string;
}

/** A throw-away self-signed certificate for localhost and 127.0.0.1, and its key hash for Chromium. */
export function makeTestCertificate(): TestCertificate {
  const { certFile, keyFile, cert: pem } = selfSignedCertificate('localhost');
  const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return { certFile, keyFile, pem, spkiHash: createHash('sha256').update(spki).digest('base64') };
}

/**
 * A fetch that trusts `ca` for https (Node's global fetch only reads NODE_EXTRA_CA_CERTS at start).
 * Redirects are never followed, which is what OAuth clients want anyway.
 */
export function fetchTrusting(ca: string): typeof fetch {
  return async (input, init) => {
    const req = new Request(input, init);
    const body = req.body ? Buffer.from(await req.arrayBuffer()) : undefined;
    const url = new URL(req.url);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<Response>((resolve, reject) => {
      const r = send(
        url,
        { method: req.method, headers: Object.fromEntries(req.headers), ...(url.protocol === 'https:' ? { ca } : {}) },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const headers = new Headers();
            for (const [k, v] of Object.entries(res.headers)) {
              if (Array.isArray(v)) v.forEach((x) => headers.append(k, x));
              else if (v !== undefined) headers.set(k, v);
            }
            const status = res.statusCode ?? 0;
            const nullBody = status === 204 || status === 304 || req.method === 'HEAD';
            resolve(new Response(nullBody ? null : Buffer.concat(chunks), { status, headers }));
          });
        },
      );
      r.on('error', reject);
      if (body) r.write(body);
      r.end();
    });
  };
}
