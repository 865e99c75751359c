import { createHash, createPrivateKey, X509Certificate, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { importJWK, type JWK } from 'jose';
import * as client from 'openid-client';
import { ConfigError } from '../../../platform/config/load.js';
import type { FederationProvider } from '../../../platform/config/schema.js';

/**
 * How this server authenticates to an upstream token endpoint: `client_secret_basic` with the
 * configured secret, or `private_key_jwt` with the key of `privateKeyFile`. The file is read
 * when the app is built, so a missing or unusable key stops the start-up (ConfigError) rather
 * than the first person who tries to sign in.
 */

export interface SigningKey {
  key: KeyObject;
  alg: 'RS256' | 'ES256' | 'ES384' | 'ES512' | 'Ed25519';
  kid?: string;
  /** Certificate thumbprints (SHA-1, SHA-256) for identity providers that name keys by certificate (Entra ID). */
  x5t?: string;
  x5tS256?: string;
}

const CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

function thumbprints(der: Buffer): { x5t: string; x5tS256: string } {
  return {
    x5t: createHash('sha1').update(der).digest('base64url'),
    x5tS256: createHash('sha256').update(der).digest('base64url'),
  };
}

function algorithmOf(key: KeyObject): SigningKey['alg'] | undefined {
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'ed25519') return 'Ed25519';
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    return curve === 'prime256v1' ? 'ES256' : curve === 'secp384r1' ? 'ES384' : curve === 'secp521r1' ? 'ES512' : undefined;
  }
  return undefined;
}

/**
 * Reads a private key: a PEM file (PKCS#8 or traditional; a certificate in the same file gives
 * its thumbprints) or a JWK (its `kid`, `x5t`, `x5t#S256` or `x5c` are used).
 */
export function readSigningKey(path: string, setting: string): SigningKey {
  const fail = (why: string) => new ConfigError(`config error: ${setting} ${path} ${why}`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw fail(`cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let key: KeyObject;
  let names: Omit<SigningKey, 'key' | 'alg'> = {};
  try {
    if (text.trimStart().startsWith('{')) {
      const jwk = JSON.parse(text) as JWK & { 'x5t#S256'?: string };
      key = createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' });
      const fromChain = jwk.x5c?.[0] ? thumbprints(Buffer.from(jwk.x5c[0], 'base64')) : undefined;
      names = {
        ...(jwk.kid ? { kid: jwk.kid } : {}),
        ...((jwk.x5t ?? fromChain?.x5t) ? { x5t: jwk.x5t ?? fromChain!.x5t } : {}),
        ...((jwk['x5t#S256'] ?? fromChain?.x5tS256) ? { x5tS256: jwk['x5t#S256'] ?? fromChain!.x5tS256 } : {}),
      };
    } else {
      key = createPrivateKey(text);
      const certificate = CERTIFICATE.exec(text)?.[0];
      if (certificate) names = thumbprints(new X509Certificate(certificate).raw);
    }
  } catch {
    throw fail('is not a PEM or JWK private key');
  }
  if (key.type !== 'private') throw fail('holds no private key');
  const alg = algorithmOf(key);
  if (!alg) throw fail('holds a key of a type that cannot sign client assertions (RSA, EC P-256/384/521 or Ed25519)');
  return { key, alg, ...names };
}

/** Reads the provider's key file, if it authenticates with one. */
export function signingKeyOf(provider: FederationProvider, index: number): SigningKey | undefined {
  return provider.privateKeyFile
    ? readSigningKey(provider.privateKeyFile, `AUTHZ_FEDERATION_PROVIDERS (federation.providers.${index}.privateKeyFile)`)
    : undefined;
}

/**
 * The client authentication of one provider. The assertion's `aud` is the token endpoint it is
 * sent to, which Entra ID and Okta require (openid-client's default, the issuer, they refuse).
 */
export async function clientAuthentication(provider: FederationProvider, key: SigningKey | undefined): Promise<client.ClientAuth> {
  if (provider.clientSecret !== undefined) return client.ClientSecretBasic(provider.clientSecret);
  if (!key) throw new Error(`federation provider ${provider.id} has neither a client secret nor a key`);
  const cryptoKey = (await importJWK(key.key.export({ format: 'jwk' }) as JWK, key.alg)) as client.CryptoKey;
  return (as, metadata, body, headers) =>
    client.PrivateKeyJwt(
      { key: cryptoKey, ...(key.kid ? { kid: key.kid } : {}) },
      {
        [client.modifyAssertion]: (header, payload) => {
          if (key.x5t) header.x5t = key.x5t;
          if (key.x5tS256) header['x5t#S256'] = key.x5tS256;
          payload.aud = as.token_endpoint ?? as.issuer;
        },
      },
    )(as, metadata, body, headers);
}
