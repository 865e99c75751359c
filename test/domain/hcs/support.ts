import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { decodeJwt } from 'jose';
import { createLogger } from '../../../src/platform/ops/logger.js';
import { ENTERPRISE_USER_SCHEMA, SMART_USER_SCHEMA } from '../../../src/records/directory/model.js';
import { createUser, directoryOf } from '../../smart/interaction/login/support.js';
import { basicAuth, type AuthorizeParams, type PageAnswers } from '../../support/smart-flow.js';
import { createTestApp, type TestApp } from '../../support/test-app.js';

export const OPAQUE_BASE = 'http://localhost:8080/fhir';
export const JWT_BASE = 'http://localhost:8080/jwt-fhir';
export const REDIRECT = 'https://clinic-app.example.org/cb';
export const APP = 'clinic-app';
export const PASSWORD = 'correct horse battery staple';
export const RS = { id: 'hcs-rs', secret: 'hcs-rs-secret-value-123' };
export const SCOPES = ['openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'online_access', 'patient/*.rs', 'user/*.rs'];

export interface HcsApp {
  t: TestApp;
  /** Every log line the app wrote, parsed. */
  logs: Array<Record<string, unknown>>;
}

/** An app with an opaque and a JWT FHIR base, an optional HCS policy file, capturing its logs. */
export async function createHcsApp(env: Record<string, string> = {}, policy?: unknown): Promise<HcsApp> {
  const dir = mkdtempSync(join(tmpdir(), 'hcs-'));
  const configFile = join(dir, 'config.json');
  writeFileSync(configFile, JSON.stringify({ fhirServers: [{ base: OPAQUE_BASE }, { base: JWT_BASE, accessTokenFormat: 'jwt' }] }));
  const extra: Record<string, string> = {};
  if (policy !== undefined) {
    const policyFile = join(dir, 'hcs-policy.json');
    writeFileSync(policyFile, JSON.stringify(policy));
    extra.AUTHZ_HCS_POLICY = policyFile;
  }
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const t = await createTestApp({ AUTHZ_CONFIG: configFile, AUTHZ_FHIR_SERVERS: '', AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000', ...extra, ...env }, { logger: createLogger('info', sink) });
  await t.registry.upsert({ client_id: RS.id, smart_client_kind: 'resource_server', client_secret: RS.secret }, { generateSecret: false });
  return { t, logs };
}

export async function registerApp(t: TestApp, clientId: string, extra: Record<string, unknown> = {}): Promise<void> {
  await t.registry.upsert(
    { client_id: clientId, client_name: `App ${clientId}`, smart_client_kind: 'public_app', redirect_uris: [REDIRECT], smart_scopes: SCOPES, ...extra },
    { generateSecret: false },
  );
}

/** A directory user with the SMART extension `smart` (and enterprise `organization` when given). */
export async function newUser(t: TestApp, smart: Record<string, unknown>, opts: { organization?: string; name?: string } = {}): Promise<PageAnswers & { userName: string; id: string }> {
  const userName = `u-${randomUUID().slice(0, 8)}`;
  const user = await createUser(directoryOf(t).users, userName, PASSWORD, {
    name: { formatted: opts.name ?? 'Dr Alex Rivera', givenName: 'Alex', familyName: 'Rivera' },
    [SMART_USER_SCHEMA]: smart,
    ...(opts.organization ? { [ENTERPRISE_USER_SCHEMA]: { organization: opts.organization } } : {}),
  });
  return { username: userName, password: PASSWORD, userName, id: user.id };
}

export function params(clientId: string, scope: string, extra: Partial<AuthorizeParams> = {}): AuthorizeParams {
  return { client_id: clientId, redirect_uri: REDIRECT, scope, aud: OPAQUE_BASE, state: 'st-hcs', ...extra };
}

export async function introspect(t: TestApp, token: string): Promise<Record<string, unknown>> {
  const res = await t.request.post('/introspect').set('Authorization', basicAuth(RS.id, RS.secret)).type('form').send({ token });
  expect(res.status).toBe(200);
  return res.body as Record<string, unknown>;
}

/** The payload of a JWT access token (its signature is checked elsewhere; here only the claims matter). */
export function jwtClaims(token: string): Record<string, unknown> {
  return decodeJwt(token) as Record<string, unknown>;
}

export const ACT_REASON = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
export const CONFIDENTIALITY = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';
export const ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
