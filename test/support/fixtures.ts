/*
 * The setup tests share: the apps a test registers, the people it signs in as, and the fixed part
 * of its authorization requests. The defaults are what most tests want, so a test states only what
 * is particular to it (its ids, scopes, links).
 */
import { randomUUID } from 'node:crypto';
import type { JWK } from 'jose';
import type { TestApp } from './test-app.js';
import { basicAuth, type AuthorizeParams } from './smart-flow.js';
import { createUserStore } from '../../src/records/directory/user-store.js';
import { SMART_USER_SCHEMA } from '../../src/records/directory/model.js';

/** The password of the people `createPerson` makes, unless a test gives its own. */
export const PASSWORD = 'correct horse battery staple';

export interface ClientCredentials {
  id: string;
  secret: string;
}

/** The resource server most tests introspect as. */
export const RS: ClientCredentials = { id: 'rs', secret: 'rs-secret-value-123' };

/** The EHR most tests launch from. */
export const EHR: ClientCredentials = { id: 'ehr', secret: 'ehr-secret-value-123' };

export interface SmartAppSpec {
  id: string;
  /** client_name; default `App <id>`. */
  name?: string;
  redirectUri: string | string[];
  scopes: string[];
  /** A confidential_symmetric app's client_secret; without it (and without `jwks`) the app is public. */
  secret?: string;
  /** A confidential_asymmetric app's public keys. */
  jwks?: { keys: JWK[] };
  fhirServers?: string[];
  /** Any further registration metadata (logo_uri, grant_types, purposes_of_use, …). */
  metadata?: Record<string, unknown>;
}

/** Registers a SMART app: public unless it has a secret (symmetric) or keys (asymmetric). */
export async function registerSmartApp(t: TestApp, app: SmartAppSpec): Promise<void> {
  const kind = app.secret !== undefined ? 'confidential_symmetric' : app.jwks ? 'confidential_asymmetric' : 'public_app';
  await t.registry.upsert(
    {
      client_id: app.id,
      client_name: app.name ?? `App ${app.id}`,
      smart_client_kind: kind,
      redirect_uris: ([] as string[]).concat(app.redirectUri),
      smart_scopes: app.scopes,
      ...(app.secret !== undefined ? { client_secret: app.secret } : {}),
      ...(app.jwks ? { jwks: app.jwks } : {}),
      ...(app.fhirServers ? { fhir_servers: app.fhirServers } : {}),
      ...app.metadata,
    },
    { generateSecret: false },
  );
}

/** An EHR-launcher client (client_secret_basic, scope `launch`, named `EHR <id>`); `metadata` for fhir_servers, client_name, …. */
export async function registerEhrLauncher(t: TestApp, ehr: ClientCredentials = EHR, metadata: Record<string, unknown> = {}): Promise<void> {
  await t.registry.upsert(
    {
      client_id: ehr.id,
      client_name: `EHR ${ehr.id}`,
      smart_client_kind: 'ehr_launcher',
      client_secret: ehr.secret,
      smart_scopes: ['launch'],
      ...metadata,
    },
    { generateSecret: false },
  );
}

/** POST /api/launch as an EHR launcher; `body` is the launch (aud, clientId, patient, encounter, …). */
export function ehrLaunch(t: TestApp, body: Record<string, unknown>, ehr: ClientCredentials = EHR) {
  return t.request
    .post('/api/launch')
    .set('Authorization', basicAuth(ehr.id, ehr.secret))
    .set('Content-Type', 'application/json')
    .send(JSON.stringify(body));
}

/** A resource server that introspects with its client secret; `metadata` for fhir_servers, client_name, …. */
export async function registerResourceServer(
  t: TestApp,
  rs: ClientCredentials = RS,
  metadata: Record<string, unknown> = {},
): Promise<void> {
  await t.registry.upsert(
    { client_id: rs.id, smart_client_kind: 'resource_server', client_secret: rs.secret, ...metadata },
    { generateSecret: false },
  );
}

/** POST /introspect as a resource server (client_secret_basic). */
export function introspect(t: TestApp, token: string, rs: ClientCredentials = RS) {
  return t.request.post('/introspect').set('Authorization', basicAuth(rs.id, rs.secret)).type('form').send({ token });
}

/** A person in the directory: the sign-in answers (`username`, `password`) and the account id. */
export interface Person {
  id: string;
  username: string;
  password: string;
}

export interface PersonOptions {
  /** Default: a fresh `u-xxxxxxxx`. */
  userName?: string;
  /** The SCIM name; default `{ givenName: 'Test', familyName: <userName> }`. */
  name?: Record<string, string>;
  /** Default: PASSWORD. */
  password?: string;
  /** Further top-level SCIM attributes (`active`, the enterprise extension, …). */
  scim?: Record<string, unknown>;
}

/**
 * A directory user whose SMART extension is `smart`: `{ fhirUser: 'Patient/…' }`, a caregiver's
 * `{ fhirUser: 'RelatedPerson/…', proxyPatients: […] }`, a practitioner's `{ fhirUser: 'Practitioner/…', staff: true }`.
 */
export async function createPerson(t: TestApp, smart: Record<string, unknown>, options: PersonOptions = {}): Promise<Person> {
  const userName = options.userName ?? `u-${randomUUID().slice(0, 8)}`;
  const password = options.password ?? PASSWORD;
  const user = await createUserStore(t.config, t.redis, t.keyspace).create({
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User', SMART_USER_SCHEMA],
    userName,
    password,
    name: options.name ?? { givenName: 'Test', familyName: userName },
    [SMART_USER_SCHEMA]: smart,
    ...options.scim,
  });
  return { id: user.id, username: userName, password };
}

/** Several people at once, each signing in with its key as user name: `createPeople(t, { pat: { fhirUser: 'Patient/pat-1' }, … })`. */
export async function createPeople<K extends string>(t: TestApp, people: Record<K, Record<string, unknown>>): Promise<Record<K, Person>> {
  const made = {} as Record<K, Person>;
  for (const userName of Object.keys(people) as K[]) made[userName] = await createPerson(t, people[userName], { userName });
  return made;
}

type FixedParams = Omit<AuthorizeParams, 'scope'>;

/**
 * `params(scope, extra)` for one app's authorization requests: `fixed` holds what every request of
 * the test names (client_id, redirect_uri, aud, state). Pass a function when a value is only known
 * once beforeAll has run (a fake FHIR server's base).
 */
export function paramsFor(fixed: FixedParams | (() => FixedParams)): (scope: string, extra?: Partial<AuthorizeParams>) => AuthorizeParams {
  return (scope, extra = {}) => {
    const { client_id, redirect_uri, ...rest } = typeof fixed === 'function' ? fixed() : fixed;
    return { client_id, redirect_uri, scope, ...rest, ...extra } as AuthorizeParams;
  };
}
