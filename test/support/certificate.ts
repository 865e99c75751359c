import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SelfSignedCertificate {
  certFile: string;
  keyFile: string;
  /** PEM of the certificate (its own CA). */
  cert: string;
  /** PEM of its P-256 private key. */
  key: string;
}

/**
 * A throw-away self-signed P-256 certificate for `name` and 127.0.0.1, valid two days, made with the
 * openssl CLI into a temporary directory (servers under test read the files, clients the PEMs).
 */
export function selfSignedCertificate(name: string): SelfSignedCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'smart-authz-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-addext',
      `subjectAltName=DNS:${name},IP:127.0.0.1`,
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  return { certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}
