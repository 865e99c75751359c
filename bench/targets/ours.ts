// This server as the token benchmark measures it: the whole app (buildApp) with production's
// audit settings, the same clients and keys as the bare baseline. Started by bench/tokens.ts.
// Codes and refresh tokens to exchange come from one real authorization through the app, copied
// under fresh ids (as many authorizations of the same grant would leave them).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import supertest from 'supertest';
import { createTestApp } from '../../test/support/test-app.js';
import { createPerson, registerSmartApp } from '../../test/support/fixtures.js';
import { followAuthorization, pkcePair } from '../../test/support/smart-flow.js';
import { modelAdapter } from '../../src/app/services.js';
import { APP, BACKEND_CLIENTS, BACKEND_SCOPE, RS, readFixture } from '../lib/fixture.js';
import { answerRunner } from '../lib/target-ipc.js';

const fixture = readFixture();
// Event validation off, as in production (AUTHZ_AUDIT_VALIDATE_EVENTS defaults to false there).
const t = await createTestApp(
  { AUTHZ_AUDIT_VALIDATE_EVENTS: 'false', ...(process.env.BENCH_ENV ? (JSON.parse(process.env.BENCH_ENV) as Record<string, string>) : {}) },
  { prefix: fixture.prefix, redisUrl: fixture.redisUrl },
);
for (const alg of ['RS384', 'ES384'] as const) {
  await t.registry.upsert({
    client_id: BACKEND_CLIENTS[alg],
    smart_client_kind: 'backend_service',
    jwks: { keys: [fixture.jwks[alg]] },
    smart_scopes: [BACKEND_SCOPE],
  });
}
await t.registry.upsert({ client_id: RS.id, smart_client_kind: 'resource_server', client_secret: RS.secret }, { generateSecret: false });
await registerSmartApp(t, {
  id: APP.id,
  redirectUri: APP.redirectUri,
  scopes: ['openid', 'fhirUser', 'offline_access', 'launch/patient', 'patient/*.rs'],
});
const patient = await createPerson(t, { fhirUser: 'Patient/bench-1' });

/** One authorization through the app: its code, unexchanged. */
async function realCode(codeChallenge: string): Promise<string> {
  const agent = supertest.agent(t.app.callback());
  const first = await agent.get('/authorize').query({
    response_type: 'code',
    client_id: APP.id,
    redirect_uri: APP.redirectUri,
    scope: 'openid fhirUser offline_access launch/patient patient/*.rs',
    aud: t.config.fhirServers[0]!.base,
    state: 'bench',
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
  });
  const flow = await followAuthorization(t, agent, first, patient.id);
  if (!flow.code) throw new Error(`no code: ${flow.error ?? flow.last.status}`);
  return flow.code;
}

const adapters = modelAdapter(t.redis, t.keyspace);
/** `n` copies of a stored model instance under fresh ids, each with a fresh lifetime. */
async function copies(model: string, id: string, n: number, lifetime: number): Promise<string[]> {
  const payload = await adapters(model).find(id);
  if (!payload) throw new Error(`${model} ${id} not found`);
  const now = Math.floor(Date.now() / 1000);
  const ids = Array.from({ length: n }, () => randomBytes(32).toString('base64url'));
  for (let i = 0; i < n; i += 500) {
    await Promise.all(
      ids
        .slice(i, i + 500)
        .map((copyId) => adapters(model).upsert(copyId, { ...payload, jti: copyId, iat: now, exp: now + lifetime }, lifetime)),
    );
  }
  return ids;
}

answerRunner(
  {
    async mintCodes(n, codeChallenge) {
      return copies('AuthorizationCode', await realCode(codeChallenge), n, 60);
    },
    async mintRefreshTokens(n) {
      const { verifier, challenge } = pkcePair();
      const code = await realCode(challenge);
      const res = await t.request
        .post('/token')
        .type('form')
        .send({ grant_type: 'authorization_code', code, redirect_uri: APP.redirectUri, code_verifier: verifier, client_id: APP.id });
      const refresh = (res.body as { refresh_token?: string }).refresh_token;
      if (!refresh) throw new Error(`no refresh token: ${res.status} ${res.text.slice(0, 200)}`);
      return copies('RefreshToken', refresh, n, 3600);
    },
  },
  t.redis as never,
  fixture.prefix,
);

const server = createServer(t.app.callback());
server.listen(0, '127.0.0.1', () => process.send?.({ ready: (server.address() as AddressInfo).port }));
