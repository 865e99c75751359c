// The baseline: oidc-provider 9 as its documentation sets it up, with a minimal Redis adapter
// (one JSON value per model instance, a hash for consumable ones, a list per grant), the same
// clients and keys as our server, and nothing of ours. Started by bench/tokens.ts.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider, { type Adapter, type AdapterPayload } from 'oidc-provider';
import { Redis } from 'ioredis';
import { APP, BACKEND_CLIENTS, BACKEND_SCOPE, ISSUER, RS, readFixture } from '../lib/fixture.js';
import { answerRunner } from '../lib/target-ipc.js';
import { ROUTES } from '../../src/oauth/paths.js';

const fixture = readFixture();
const redis = new Redis(fixture.redisUrl);

const CONSUMABLE = new Set(['AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

class RedisAdapter implements Adapter {
  constructor(private readonly model: string) {}
  private key(id: string) {
    return `${fixture.prefix}${this.model}:${id}`;
  }
  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const key = this.key(id);
    const multi = redis.multi();
    if (CONSUMABLE.has(this.model)) multi.hset(key, { payload: JSON.stringify(payload) });
    else multi.set(key, JSON.stringify(payload));
    if (expiresIn > 0) multi.expire(key, expiresIn);
    if (payload.grantId) {
      const grantKey = `${fixture.prefix}grant:${payload.grantId}`;
      multi.rpush(grantKey, key);
      if (expiresIn > 0) multi.expire(grantKey, expiresIn);
    }
    if (payload.uid) multi.set(`${fixture.prefix}uid:${payload.uid}`, id, 'EX', Math.max(1, expiresIn));
    await multi.exec();
  }
  async find(id: string): Promise<AdapterPayload | undefined> {
    if (CONSUMABLE.has(this.model)) {
      const data = await redis.hgetall(this.key(id));
      if (!data.payload) return undefined;
      return { ...(JSON.parse(data.payload) as AdapterPayload), ...(data.consumed ? { consumed: Number(data.consumed) } : {}) };
    }
    const data = await redis.get(this.key(id));
    return data ? (JSON.parse(data) as AdapterPayload) : undefined;
  }
  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const id = await redis.get(`${fixture.prefix}uid:${uid}`);
    return id ? this.find(id) : undefined;
  }
  async findByUserCode(): Promise<AdapterPayload | undefined> {
    return undefined;
  }
  async consume(id: string): Promise<void> {
    await redis.hset(this.key(id), 'consumed', Math.floor(Date.now() / 1000));
  }
  async destroy(id: string): Promise<void> {
    await redis.del(this.key(id));
  }
  async revokeByGrantId(grantId: string): Promise<void> {
    const grantKey = `${fixture.prefix}grant:${grantId}`;
    const keys = await redis.lrange(grantKey, 0, -1);
    await redis.del(...keys, grantKey);
  }
}

const signing = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
const provider = new Provider(ISSUER, {
  adapter: RedisAdapter,
  jwks: { keys: [{ ...signing, kid: 'bare-rs256', alg: 'RS256', use: 'sig' }] },
  clients: [
    ...(['RS384', 'ES384'] as const).map((alg) => ({
      client_id: BACKEND_CLIENTS[alg],
      token_endpoint_auth_method: 'private_key_jwt' as const,
      token_endpoint_auth_signing_alg: alg,
      jwks: { keys: [fixture.jwks[alg]] },
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: BACKEND_SCOPE,
    })),
    { client_id: RS.id, client_secret: RS.secret, grant_types: [], response_types: [], redirect_uris: [] },
    {
      client_id: APP.id,
      token_endpoint_auth_method: 'none' as const,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [APP.redirectUri],
      scope: 'openid fhirUser offline_access patient/*.rs',
    },
  ],
  clientAuthMethods: ['private_key_jwt', 'client_secret_basic', 'none'],
  enabledJWA: { clientAuthSigningAlgValues: ['RS384', 'ES384'] },
  scopes: ['openid', 'offline_access', 'fhirUser', 'patient/*.rs', BACKEND_SCOPE],
  routes: ROUTES,
  features: { clientCredentials: { enabled: true }, introspection: { enabled: true }, revocation: { enabled: true } },
  pkce: { required: () => true },
  findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  issueRefreshToken: (_ctx, client, code) => client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
  rotateRefreshToken: true,
  ttl: { ClientCredentials: 300, AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, RefreshToken: 86_400, Grant: 86_400 },
});

/** A grant and codes for it, as an interaction would have left them. */
async function grantFor(accountId: string): Promise<string> {
  const grant = new provider.Grant({ accountId, clientId: APP.id });
  grant.addOIDCScope('openid fhirUser offline_access patient/*.rs');
  return grant.save();
}

answerRunner(
  {
    async mintCodes(n, codeChallenge) {
      const client = await provider.Client.find(APP.id);
      const grantId = await grantFor('bench-user');
      const codes: string[] = [];
      for (let i = 0; i < n; i++) {
        // One at a time: save() is what the authorization endpoint does per code.
        const code = new provider.AuthorizationCode({
          accountId: 'bench-user',
          client: client!,
          grantId,
          scope: 'openid fhirUser offline_access patient/*.rs',
          redirectUri: APP.redirectUri,
          codeChallenge,
          codeChallengeMethod: 'S256',
          gty: 'authorization_code',
          authTime: Math.floor(Date.now() / 1000),
          sessionUid: randomUUID(),
        });
        codes.push(await code.save());
      }
      return codes;
    },
    async mintRefreshTokens(n) {
      const client = await provider.Client.find(APP.id);
      const tokens: string[] = [];
      for (let i = 0; i < n; i++) {
        const grantId = await grantFor('bench-user');
        const token = new provider.RefreshToken({
          accountId: 'bench-user',
          client: client!,
          grantId,
          scope: 'openid fhirUser offline_access patient/*.rs',
          authTime: Math.floor(Date.now() / 1000),
          sessionUid: randomUUID(),
          gty: 'authorization_code',
        });
        tokens.push(await token.save());
      }
      return tokens;
    },
  },
  redis,
  fixture.prefix,
);

const server = createServer(provider.callback());
server.listen(0, '127.0.0.1', () => process.send?.({ ready: (server.address() as AddressInfo).port }));
