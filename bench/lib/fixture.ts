// What both token benchmark targets share: one issuer, the same clients and the same client keys,
// so the only difference between them is the server. The load generator makes the keys and hands
// them to each target process in BENCH_FIXTURE.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';

export const ISSUER = 'http://localhost:3000';
export const BACKEND_SCOPE = 'system/*.rs';
export const RS = { id: 'bench-rs', secret: 'bench-rs-secret-0123456789abcdef' };
export const APP = { id: 'bench-app', redirectUri: 'http://127.0.0.1:9/callback' };

export type Alg = 'RS384' | 'ES384';
export const BACKEND_CLIENTS: Record<Alg, string> = { RS384: 'bench-rs384', ES384: 'bench-es384' };

export interface PublicFixture {
  redisUrl: string;
  prefix: string;
  /** Public JWKs of the backend clients, by algorithm (each with kid and alg). */
  jwks: Record<Alg, Record<string, unknown>>;
}

export interface ClientKey {
  alg: Alg;
  kid: string;
  privateKey: KeyObject;
  publicJwk: Record<string, unknown>;
}

export function clientKey(alg: Alg): ClientKey {
  const { privateKey, publicKey } =
    alg === 'RS384' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const kid = `bench-${alg.toLowerCase()}`;
  return { alg, kid, privateKey, publicJwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } };
}

export function readFixture(): PublicFixture {
  const raw = process.env.BENCH_FIXTURE;
  if (!raw) throw new Error('BENCH_FIXTURE is not set (targets are started by the benchmark runner)');
  return JSON.parse(raw) as PublicFixture;
}
