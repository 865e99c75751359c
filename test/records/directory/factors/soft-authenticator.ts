import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';

/*
 * A WebAuthn authenticator in software, for tests: an ES256 key made with node:crypto, "none"
 * attestation, authenticator data and client data built byte by byte as a browser and a security
 * key would, so every check the server makes (origin, RP ID hash, challenge, flags, signature,
 * counter) meets real data. Each ceremony can be bent (another origin, RP ID, no UV, a given
 * counter) to play an attacker or a cloned key.
 */

type CborValue = number | string | Uint8Array | CborValue[] | Map<number | string, CborValue>;

function head(major: number, n: number): Buffer {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 0x100) return Buffer.from([(major << 5) | 24, n]);
  if (n < 0x10000) return Buffer.from([(major << 5) | 25, n >> 8, n & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = (major << 5) | 26;
  b.writeUInt32BE(n, 1);
  return b;
}

/** Just enough CBOR (RFC 8949) for attestation objects and COSE keys. */
export function cbor(value: CborValue): Buffer {
  if (typeof value === 'number') return value >= 0 ? head(0, value) : head(1, -1 - value);
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    return Buffer.concat([head(3, bytes.length), bytes]);
  }
  if (value instanceof Uint8Array) return Buffer.concat([head(2, value.length), value]);
  if (Array.isArray(value)) return Buffer.concat([head(4, value.length), ...value.map(cbor)]);
  return Buffer.concat([head(5, value.size), ...[...value].flatMap(([k, v]) => [cbor(k), cbor(v)])]);
}

const b64u = (b: Uint8Array | string) => Buffer.from(b).toString('base64url');
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest();

const FLAG = { UP: 0x01, UV: 0x04, BE: 0x08, BS: 0x10, AT: 0x40 } as const;

export interface Bend {
  origin?: string;
  rpId?: string;
  /** Leave out user verification (a key without PIN or biometric). */
  noUserVerification?: boolean;
  /** The signature counter to report (default: one more than last time). */
  counter?: number;
  /** The client data type (default webauthn.create / webauthn.get). */
  type?: string;
}

export class SoftAuthenticator {
  readonly credentialId = randomBytes(16);
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;
  private counter = 0;

  /** `synced`: a passkey (backup eligible, multiDevice); else a device-bound key. */
  constructor(
    private readonly rp: { id: string; origin: string },
    private readonly opts: { synced?: boolean } = {},
  ) {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.privateKey = pair.privateKey;
    this.publicKey = pair.publicKey;
  }

  get id(): string {
    return b64u(this.credentialId);
  }

  register(options: { challenge: string }, bend: Bend = {}): RegistrationResponseJSON {
    const jwk = this.publicKey.export({ format: 'jwk' });
    const coseKey = new Map<number, CborValue>([
      [1, 2], // kty: EC2
      [3, -7], // alg: ES256
      [-1, 1], // crv: P-256
      [-2, Buffer.from(jwk.x!, 'base64url')],
      [-3, Buffer.from(jwk.y!, 'base64url')],
    ]);
    const idLength = Buffer.alloc(2);
    idLength.writeUInt16BE(this.credentialId.length);
    const attested = Buffer.concat([Buffer.alloc(16), idLength, this.credentialId, cbor(coseKey)]);
    const authData = Buffer.concat([this.authDataHead(bend, FLAG.AT, bend.counter ?? 0), attested]);
    const attestationObject = cbor(
      new Map<string, CborValue>([
        ['fmt', 'none'],
        ['attStmt', new Map()],
        ['authData', authData],
      ]),
    );
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: {
        clientDataJSON: this.clientData(bend.type ?? 'webauthn.create', options.challenge, bend),
        attestationObject: b64u(attestationObject),
        transports: ['usb'],
      },
      clientExtensionResults: {},
      authenticatorAttachment: 'cross-platform',
    };
  }

  assert(options: { challenge: string }, bend: Bend = {}): AuthenticationResponseJSON {
    const counter = bend.counter ?? ++this.counter;
    const authData = this.authDataHead(bend, 0, counter);
    const clientDataJSON = this.clientData(bend.type ?? 'webauthn.get', options.challenge, bend);
    const signature = sign('sha256', Buffer.concat([authData, sha256(Buffer.from(clientDataJSON, 'base64url'))]), this.privateKey);
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: { clientDataJSON, authenticatorData: b64u(authData), signature: b64u(signature) },
      clientExtensionResults: {},
    };
  }

  private authDataHead(bend: Bend, extra: number, counter: number): Buffer {
    const synced = this.opts.synced ? FLAG.BE | FLAG.BS : 0;
    const flags = FLAG.UP | (bend.noUserVerification ? 0 : FLAG.UV) | synced | extra;
    const count = Buffer.alloc(4);
    count.writeUInt32BE(counter);
    return Buffer.concat([sha256(bend.rpId ?? this.rp.id), Buffer.from([flags]), count]);
  }

  private clientData(type: string, challenge: string, bend: Bend): string {
    return b64u(JSON.stringify({ type, challenge, origin: bend.origin ?? this.rp.origin, crossOrigin: false }));
  }
}
