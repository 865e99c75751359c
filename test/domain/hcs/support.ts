import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { decodeJwt } from 'jose';
import { createLogger } from '../../../src/platform/ops/logger.js';
import { ENTERPRISE_USER_SCHEMA } from '../../../src/records/directory/model.js';
import type { AuthorizeParams } from '../../support/smart-flow.js';
import {
  createPerson,
  introspect as postIntrospect,
  registerResourceServer,
  registerSmartApp,
  type Person,
} from '../../support/fixtures.js';
import { createTestApp, type TestApp } from '../../support/test-app.js';

export const OPAQUE_BASE = 'http://localhost:8080/fhir';
export const JWT_BASE = 'http://localhost:8080/jwt-fhir';
export const REDIRECT = 'https://clinic-app.example.org/cb';
export const APP = 'clinic-app';
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
  const t = await createTestApp(
    { AUTHZ_CONFIG: configFile, AUTHZ_FHIR_SERVERS: '', AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000', ...extra, ...env },
    { logger: createLogger('info', sink) },
  );
  await registerResourceServer(t);
  return { t, logs };
}

export async function registerApp(t: TestApp, clientId: string, metadata: Record<string, unknown> = {}): Promise<void> {
  await registerSmartApp(t, { id: clientId, redirectUri: REDIRECT, scopes: SCOPES, metadata });
}

/** A directory user with the SMART extension `smart` (and enterprise `organization` when given). */
export function newUser(t: TestApp, smart: Record<string, unknown>, opts: { organization?: string; name?: string } = {}): Promise<Person> {
  return createPerson(t, smart, {
    name: { formatted: opts.name ?? 'Dr Alex Rivera', givenName: 'Alex', familyName: 'Rivera' },
    ...(opts.organization ? { scim: { [ENTERPRISE_USER_SCHEMA]: { organization: opts.organization } } } : {}),
  });
}

export function params(clientId: string, scope: string, extra: Partial<AuthorizeParams> = {}): AuthorizeParams {
  return { client_id: clientId, redirect_uri: REDIRECT, scope, aud: OPAQUE_BASE, state: 'st-hcs', ...extra };
}

export async function introspect(t: TestApp, token: string): Promise<Record<string, unknown>> {
  const res = await postIntrospect(t, token);
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
