/*
 * Driving SMART authorizations through the real HTTP app with a cookie-keeping agent: straight to
 * the stored interaction (followAuthorization) or through the real pages (authorizeThroughPages).
 * What a test registers and signs in as beforehand is in fixtures.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import supertest from 'supertest';
import type { TestApp } from './test-app.js';
import { createUserStore } from '../../src/records/directory/user-store.js';
import { SMART_USER_SCHEMA } from '../../src/records/directory/model.js';
import { absoluteFhirUser } from '../../src/records/directory/accounts.js';
import { LaunchStore, type LaunchContext } from '../../src/smart/launch/launch-store.js';
import { GrantContextStore, type GrantContext } from '../../src/oauth/tokens/grant-context.js';
import { grantableScopes } from '../../src/smart/launch/user-scopes.js';
import { userContextOf } from '../../src/smart/interaction/facts/user-context.js';
import { CONTEXT_SCOPES } from '../../src/domain/scopes/scope-syntax.js';
import { modelAdapter } from '../../src/app/services.js';
import { createConsentService } from '../../src/records/consent/wiring.js';
import type { ConsentService } from '../../src/records/consent/consent-service.js';
import type { StoredConsent } from '../../src/records/consent/consent-store.js';

export type Agent = ReturnType<typeof supertest.agent>;

export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export function basicAuth(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

export function launchStoreOf(t: TestApp): LaunchStore {
  return new LaunchStore(t.redis, t.keyspace, t.config.ttl.launch);
}

export function grantContextsOf(t: TestApp): GrantContextStore {
  return new GrantContextStore(t.redis, t.keyspace);
}

export interface ConsentChoice {
  /** Patient when the launch has none (a standalone pick). */
  patient?: string;
  /** Approve only these (default: everything grantable). */
  approve?: string[];
}

export interface FlowResult {
  agent: Agent;
  /** The final redirect back to the app (or undefined when the flow stopped on a page). */
  location?: URL;
  code?: string;
  error?: string;
  /** The last response of the flow. */
  last: supertest.Response;
}

type StoredInteraction = {
  uid: string;
  exp: number;
  params: Record<string, unknown>;
  prompt: { name: string };
  result?: unknown;
  save(ttl: number): Promise<string>;
};

/**
 * Finishes a consent the way the interaction handlers do (contract with engineer B): the launch is
 * used up, the grant holds what the user may grant (OIDC scopes, and every granted scope under the
 * FHIR server so access tokens list them), the rest is rejected, and the context is kept beside it.
 */
async function grantConsent(t: TestApp, interaction: StoredInteraction, accountId: string, choice: ConsentChoice): Promise<string> {
  const params = interaction.params;
  const requested = [
    ...new Set(
      String(params.scope ?? '')
        .split(' ')
        .filter(Boolean),
    ),
  ];
  const audience = String(params.resource ?? params.aud);
  const clientId = String(params.client_id);
  const client = (await t.app.Client.find(clientId)) as unknown as { smart_scopes?: string[] };
  let launch: LaunchContext | undefined;
  if (typeof params.launch === 'string') {
    launch = await launchStoreOf(t).consume(params.launch);
    if (!launch) throw new Error('the launch was gone at consent');
  }
  const users = createUserStore(t.config, t.redis, t.keyspace);
  const user = await users.get(accountId);
  const { access } = userContextOf(user, t.config.fhirServers[0]!.base, await users.effectiveRoles(accountId), {
    staffRoles: t.config.hcs.staffRoles,
  });
  // As the recorder does: an account linked to nothing has no patient in context.
  const patient = access === 'none' ? undefined : (launch?.patient ?? choice.patient);
  const { granted } = grantableScopes({ requested, clientAllowed: client.smart_scopes ?? [], access, hasPatient: patient !== undefined });
  const approved = choice.approve ? granted.filter((s) => choice.approve!.includes(s)) : granted;
  const rejected = requested.filter((s) => !approved.includes(s));

  const grant = new t.app.Grant({ accountId, clientId });
  const oidc = approved.filter((s) => (CONTEXT_SCOPES as readonly string[]).includes(s));
  const oidcRejected = rejected.filter((s) => (CONTEXT_SCOPES as readonly string[]).includes(s));
  if (oidc.length) grant.addOIDCScope(oidc.join(' '));
  if (oidcRejected.length) grant.rejectOIDCScope(oidcRejected.join(' '));
  if (approved.length) grant.addResourceScope(audience, approved.join(' '));
  if (rejected.length) grant.rejectResourceScope(audience, rejected.join(' '));
  const grantId = await grant.save();

  const context: GrantContext = {};
  if (patient) context.patient = patient;
  if (launch?.encounter) context.encounter = launch.encounter;
  if (launch?.fhirContext) context.fhirContext = launch.fhirContext;
  if (launch?.need_patient_banner !== undefined) context.need_patient_banner = launch.need_patient_banner;
  if (launch?.smart_style_url) context.smart_style_url = launch.smart_style_url;
  if (launch?.intent) context.intent = launch.intent;
  if (launch?.tenant) context.tenant = launch.tenant;
  const fhirUser = absoluteFhirUser(user?.[SMART_USER_SCHEMA]?.fhirUser, t.config.fhirServers[0]!.base);
  if (fhirUser) context.fhirUser = fhirUser;
  if (approved.includes('online_access') && !approved.includes('offline_access')) context.onlineAccess = true;
  // Patient/ scopes stand on the patient's Consent, as the consent page records it (consent-gate.ts).
  if (patient && fhirUser && approved.some((s) => s.startsWith('patient/'))) {
    const consent = await consentServiceOf(t).recordDecision({
      kind: 'permit',
      patientId: patient,
      performer: { reference: fhirUser },
      clientId,
      scopes: approved,
      periodSeconds: approved.includes('offline_access') ? t.config.ttl.refreshToken : t.config.ttl.session,
      grantId,
    });
    context.consentId = consent.id;
  }
  await grantContextsOf(t).save(grantId, context, t.config.ttl.grant);
  return grantId;
}

/** The consent service over the test app's Redis, as the app builds it. */
export function consentServiceOf(t: TestApp): ConsentService {
  return createConsentService({
    config: t.config,
    redis: t.redis,
    keyspace: t.keyspace,
    adapters: modelAdapter(t.redis, t.keyspace),
    grantContexts: grantContextsOf(t),
    provider: () => t.app,
  });
}

/** Every Consent recorded for a patient (up to 100), newest first as the store lists them. */
export async function consentsOf(t: TestApp, patientId: string): Promise<StoredConsent[]> {
  return (await consentServiceOf(t).store.search({ patient: patientId, count: 100, offset: 0 })).consents;
}

/**
 * Follows an authorization from its first response to the redirect back to the app, answering the
 * login prompt as `accountId` and consent with `grantConsent`, by writing the interaction result
 * directly (what the interaction pages do after their forms) and resuming.
 */
export async function followAuthorization(
  t: TestApp,
  agent: Agent,
  first: supertest.Response,
  accountId: string,
  choice: ConsentChoice = {},
): Promise<FlowResult> {
  let res = first;
  for (let step = 0; step < 10; step += 1) {
    if (res.status !== 302 && res.status !== 303) return { agent, last: res };
    const location = new URL(res.headers.location!, 'http://127.0.0.1');
    const interactionUid = /^\/interaction\/([^/]+)$/.exec(location.pathname)?.[1];
    if (!interactionUid) {
      if (location.pathname.startsWith('/authorize')) {
        res = await agent.get(`${location.pathname}${location.search}`);
        continue;
      }
      const code = location.searchParams.get('code') ?? undefined;
      const error = location.searchParams.get('error') ?? undefined;
      return { agent, location, last: res, ...(code ? { code } : {}), ...(error ? { error } : {}) };
    }
    const interaction = (await t.app.Interaction.find(interactionUid)) as unknown as StoredInteraction | undefined;
    if (!interaction) throw new Error(`interaction ${interactionUid} not found`);
    switch (interaction.prompt.name) {
      case 'login':
        interaction.result = { login: { accountId } };
        break;
      case 'consent':
        interaction.result = { consent: { grantId: await grantConsent(t, interaction, accountId, choice) } };
        break;
      default:
        throw new Error(`followAuthorization cannot answer the ${interaction.prompt.name} prompt`);
    }
    await interaction.save(Math.max(1, interaction.exp - Math.floor(Date.now() / 1000)));
    res = await agent.get(`/authorize/${interactionUid}`);
  }
  throw new Error('the authorization did not finish within 10 redirects');
}

export interface AuthorizeParams {
  client_id: string;
  redirect_uri: string;
  scope: string;
  state?: string;
  aud?: string;
  resource?: string;
  launch?: string;
  code_challenge?: string;
  code_challenge_method?: string;
  prompt?: string;
  [name: string]: string | undefined;
}

/** Starts an authorization by GET in a fresh browser, with state and PKCE S256; a parameter given as '' is left out. */
export async function startAuthorization(
  t: TestApp,
  params: AuthorizeParams,
): Promise<{ agent: Agent; first: supertest.Response; verifier: string }> {
  const agent = supertest.agent(t.app.callback());
  const { verifier, challenge } = pkcePair();
  const query: Record<string, string> = { response_type: 'code', state: 'st-1', code_challenge: challenge, code_challenge_method: 'S256' };
  for (const [k, v] of Object.entries(params)) if (v !== undefined) query[k] = v;
  for (const k of Object.keys(query)) if (params[k] === '') delete query[k];
  const first = await agent.get('/authorize').query(query);
  return { agent, first, verifier };
}

/** The whole authorization-code flow for a public app: code, then the token response. */
export async function authorizeAndExchange(
  t: TestApp,
  params: AuthorizeParams,
  accountId: string,
  choice: ConsentChoice = {},
): Promise<{ flow: FlowResult; token: supertest.Response; verifier: string }> {
  const { agent, first, verifier } = await startAuthorization(t, params);
  const flow = await followAuthorization(t, agent, first, accountId, choice);
  if (!flow.code) throw new Error(`no code: ${flow.error ?? flow.last.status} ${flow.location?.search ?? flow.last.text.slice(0, 300)}`);
  const token = await t.request.post('/token').type('form').send({
    grant_type: 'authorization_code',
    code: flow.code,
    redirect_uri: params.redirect_uri,
    code_verifier: verifier,
    client_id: params.client_id,
  });
  return { flow, token, verifier };
}

/*
 * ---- Driving an authorization through the real interaction pages (engineer B) ----
 * A browser-like walk: redirects are followed, each page is answered by posting its own form
 * (with the CSRF token the page carries), until the browser is sent back to the app.
 */

export type PromptPage =
  'login' | 'second_factor' | 'enrol_factor' | 'factor_enrolled' | 'select_patient' | 'select_encounter' | 'consent' | 'unknown';

export type BrowserStop =
  | { kind: 'page'; uid: string; prompt: PromptPage; res: supertest.Response }
  | { kind: 'app'; location: URL; code?: string; error?: string; res: supertest.Response }
  | { kind: 'error'; res: supertest.Response };

/** Undoes EJS's escaping of an attribute value. */
export function unescapeHtml(s: string): string {
  return s.replace(/&#34;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

export function csrfFrom(html: string): string {
  const token = /name="csrf" value="([^"]+)"/.exec(html)?.[1];
  if (!token) throw new Error('no csrf token in the page');
  return token;
}

/** The values of the inputs of one type and name on a page, unescaped, in page order. */
export function inputValues(html: string, type: 'radio' | 'checkbox', name: string): string[] {
  const re = new RegExp(`<input type="${type}" id="[^"]*" name="${name}" value="([^"]*)"`, 'g');
  return [...html.matchAll(re)].map((m) => unescapeHtml(m[1]!));
}

/** The values of the checkboxes of one name that a page shows ticked, unescaped, in page order. */
export function checkedValues(html: string, name: string): string[] {
  const re = new RegExp(`<input type="checkbox" id="[^"]*" name="${name}" value="([^"]*)"( checked)?`, 'g');
  return [...html.matchAll(re)].filter((m) => m[2]).map((m) => unescapeHtml(m[1]!));
}

export function promptOfPage(html: string): PromptPage {
  if (/action="\/interaction\/[^/"]+\/second-factor\/continue"/.test(html)) return 'factor_enrolled';
  if (/action="\/interaction\/[^/"]+\/second-factor\/enrol-/.test(html)) return 'enrol_factor';
  if (/action="\/interaction\/[^/"]+\/second-factor"/.test(html)) return 'second_factor';
  if (/action="\/interaction\/[^/"]+\/login"/.test(html)) return 'login';
  if (/action="\/interaction\/[^/"]+\/consent"/.test(html)) return 'consent';
  if (/action="\/interaction\/[^/"]+\/encounter"/.test(html)) return 'select_encounter';
  if (/<title>Choose a patient /.test(html)) return 'select_patient';
  return 'unknown';
}

/** Follows redirects as a browser would, until a page is shown or the browser goes back to the app. */
export async function browse(agent: Agent, from: supertest.Response): Promise<BrowserStop> {
  let res = from;
  let uid: string | undefined;
  for (let step = 0; step < 15; step += 1) {
    if (res.status === 302 || res.status === 303) {
      const location = new URL(res.headers.location!, 'http://127.0.0.1');
      const ours = ['127.0.0.1', 'localhost'].includes(location.hostname);
      if (ours && (location.pathname.startsWith('/interaction/') || location.pathname.startsWith('/authorize'))) {
        uid = /^\/interaction\/([^/]+)$/.exec(location.pathname)?.[1] ?? uid;
        res = await agent.get(`${location.pathname}${location.search}`).set('Accept', 'text/html');
        continue;
      }
      const code = location.searchParams.get('code') ?? undefined;
      const error = location.searchParams.get('error') ?? undefined;
      return { kind: 'app', location, res, ...(code ? { code } : {}), ...(error ? { error } : {}) };
    }
    if (res.status === 200 && uid) return { kind: 'page', uid, prompt: promptOfPage(res.text), res };
    return { kind: 'error', res };
  }
  throw new Error('more than 15 redirects');
}

/** Posts a page's form: `fields` plus the page's CSRF token (pass csrf: '' to leave it out). */
export async function postForm(
  agent: Agent,
  uid: string,
  action: string,
  page: supertest.Response,
  fields: Record<string, string | string[]>,
): Promise<supertest.Response> {
  const form = new URLSearchParams();
  if (!('csrf' in fields)) form.append('csrf', csrfFrom(page.text));
  for (const [name, value] of Object.entries(fields))
    for (const v of ([] as string[]).concat(value)) if (name !== 'csrf' || v) form.append(name, v);
  return agent.post(`/interaction/${uid}/${action}`).type('form').set('Accept', 'text/html').send(form.toString());
}

/** The page a browse stopped at; anything else throws, saying where it stopped. */
export function pageOf(stop: BrowserStop): Extract<BrowserStop, { kind: 'page' }> {
  if (stop.kind !== 'page')
    throw new Error(
      `expected a page, got ${stop.kind} ${stop.res.status} ${stop.kind === 'app' ? stop.location.href : stop.res.text.slice(0, 300)}`,
    );
  return stop;
}

/** Starts an authorization in a fresh browser, signs in on the login page as `who` and stops at whatever comes next. */
export async function signIn(
  t: TestApp,
  params: AuthorizeParams,
  who: { username: string; password: string },
): Promise<{ agent: Agent; verifier: string; stop: BrowserStop }> {
  const { agent, first, verifier } = await startAuthorization(t, params);
  const login = pageOf(await browse(agent, first));
  if (login.prompt !== 'login') throw new Error(`expected the login page, got ${login.prompt}`);
  const stop = await browse(
    agent,
    await postForm(agent, login.uid, 'login', login.res, { username: who.username, password: who.password }),
  );
  return { agent, verifier, stop };
}

/** Signs in (as `signIn`) and expects the consent page next. */
export async function openConsentPage(t: TestApp, params: AuthorizeParams, who: { username: string; password: string }) {
  const { agent, verifier, stop } = await signIn(t, params, who);
  const consent = pageOf(stop);
  if (consent.prompt !== 'consent') throw new Error(`expected the consent page, got ${consent.prompt}`);
  return { agent, verifier, consent, html: consent.res.text };
}

export interface PageAnswers {
  username: string;
  password: string;
  /** The patient to choose (a radio value); default: the first offered. */
  patient?: string;
  /** Practitioners: what to search for before choosing. */
  search?: { name?: string; birthdate?: string; identifier?: string };
  /** An encounter id, or 'none'; default: the first offered. */
  encounter?: string;
  consent?: 'allow' | 'deny';
  /** Optional scopes to untick on the consent page. */
  untick?: string[];
  /** Boxes to tick on the consent page that it shows unticked (e.g. granular categories). */
  tick?: string[];
  /** The second-factor page: a code from the person's authenticator app (second-factor.ts nextTotpCode). */
  totpCode?: () => Promise<string>;
  /** The enrolment page: "scan" the app's secret from the page and give its first code. */
  enrolTotp?: (html: string) => Promise<string>;
}

export interface PageFlow {
  agent: Agent;
  verifier: string;
  /** The prompts whose pages were shown, in order. */
  pages: PromptPage[];
  /** Where it stopped: back at the app, or on a page it could not answer. */
  stop: BrowserStop;
  code?: string;
  error?: string;
}

/** Answers the page in front of the browser; undefined when there is nothing to answer with. */
async function answerPage(
  agent: Agent,
  stop: Extract<BrowserStop, { kind: 'page' }>,
  answers: PageAnswers,
): Promise<supertest.Response | undefined> {
  const { uid, res } = stop;
  switch (stop.prompt) {
    case 'login':
      return postForm(agent, uid, 'login', res, { username: answers.username, password: answers.password });
    case 'second_factor':
      return answers.totpCode ? postForm(agent, uid, 'second-factor', res, { method: 'totp', code: await answers.totpCode() }) : undefined;
    case 'enrol_factor':
      return answers.enrolTotp
        ? postForm(agent, uid, 'second-factor/enrol-totp', res, { code: await answers.enrolTotp(res.text) })
        : undefined;
    case 'factor_enrolled':
      return postForm(agent, uid, 'second-factor/continue', res, {});
    case 'select_patient': {
      const offered = inputValues(res.text, 'radio', 'patient');
      if (!offered.length && answers.search && res.text.includes('/patient-search"'))
        return postForm(agent, uid, 'patient-search', res, answers.search);
      const patient = answers.patient ?? offered[0];
      return patient === undefined ? undefined : postForm(agent, uid, 'patient', res, { patient });
    }
    case 'select_encounter': {
      const encounter = answers.encounter ?? inputValues(res.text, 'radio', 'encounter')[0] ?? 'none';
      return postForm(agent, uid, 'encounter', res, { encounter });
    }
    case 'consent': {
      // As a browser does: the boxes ticked on the page, minus the unticked, plus the ticked.
      const untick = new Set(answers.untick ?? []);
      const offered = new Set(inputValues(res.text, 'checkbox', 'scope'));
      const tick = (answers.tick ?? []).filter((s) => offered.has(s));
      const scope = [...new Set([...checkedValues(res.text, 'scope'), ...tick])].filter((s) => !untick.has(s));
      return postForm(agent, uid, 'consent', res, { decision: answers.consent ?? 'allow', scope });
    }
    default:
      return undefined;
  }
}

/** An authorization from GET /authorize to the app's redirect_uri, through the real pages. */
export async function authorizeThroughPages(t: TestApp, params: AuthorizeParams, answers: PageAnswers): Promise<PageFlow> {
  const { agent, first, verifier } = await startAuthorization(t, params);
  const pages: PromptPage[] = [];
  let stop = await browse(agent, first);
  for (let step = 0; step < 12 && stop.kind === 'page'; step += 1) {
    if (pages.at(-1) !== stop.prompt) pages.push(stop.prompt);
    const next = await answerPage(agent, stop, answers);
    if (!next) break;
    if (next.status !== 302 && next.status !== 303) {
      // A page answered with a page (search results, a refused choice): keep answering it.
      stop =
        next.status === 200 ? { kind: 'page', uid: stop.uid, prompt: promptOfPage(next.text), res: next } : { kind: 'error', res: next };
      continue;
    }
    stop = await browse(agent, next);
  }
  return {
    agent,
    verifier,
    pages,
    stop,
    ...(stop.kind === 'app' && stop.code ? { code: stop.code } : {}),
    ...(stop.kind === 'app' && stop.error ? { error: stop.error } : {}),
  };
}

/** Exchanges a flow's code at /token as the public app of `params`. */
export async function exchangeCode(
  t: TestApp,
  flow: PageFlow,
  params: Pick<AuthorizeParams, 'client_id' | 'redirect_uri'>,
): Promise<supertest.Response> {
  if (!flow.code) throw new Error(`no code to exchange (stopped at ${flow.stop.kind}${flow.error ? `: ${flow.error}` : ''})`);
  return t.request.post('/token').type('form').send({
    grant_type: 'authorization_code',
    code: flow.code,
    redirect_uri: params.redirect_uri,
    code_verifier: flow.verifier,
    client_id: params.client_id,
  });
}

/** Starts another authorization in an existing browser (its SSO session and cookies kept). */
export async function startAuthorizationIn(
  agent: Agent,
  params: AuthorizeParams,
): Promise<{ first: supertest.Response; verifier: string }> {
  const { verifier, challenge } = pkcePair();
  const query: Record<string, string> = { response_type: 'code', state: 'st-1', code_challenge: challenge, code_challenge_method: 'S256' };
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') query[k] = v;
  return { first: await agent.get('/authorize').query(query), verifier };
}

/** Exchanges a code at /token as a public app. */
export function exchange(
  t: TestApp,
  code: string,
  verifier: string,
  params: Pick<AuthorizeParams, 'client_id' | 'redirect_uri'>,
): Promise<supertest.Response> {
  return t.request.post('/token').type('form').send({
    grant_type: 'authorization_code',
    code,
    redirect_uri: params.redirect_uri,
    code_verifier: verifier,
    client_id: params.client_id,
  });
}

/** Follows redirects that stay on this server (its issuer or the test host), as a browser would. */
export async function followOnServer(t: TestApp, agent: Agent, from: supertest.Response): Promise<supertest.Response> {
  const issuer = t.config.issuer;
  let res = from;
  for (let i = 0; i < 15 && (res.status === 302 || res.status === 303); i++) {
    const location = new URL(res.headers.location!, issuer);
    if (location.origin !== issuer && location.hostname !== '127.0.0.1') return res;
    res = await agent.get(`${location.pathname}${location.search}`).set('Accept', 'text/html');
  }
  return res;
}

/** A fresh browser signed in on `path` (the management page) as `who`, through this server's sign-in page. */
export async function signedInOn(
  t: TestApp,
  path: string,
  who: { username: string; password: string },
): Promise<{ agent: Agent; page: supertest.Response }> {
  const agent = supertest.agent(t.app.callback());
  const res = await followOnServer(t, agent, await agent.get(path).set('Accept', 'text/html'));
  const login = /action="\/interaction\/([^/"]+)\/login"/.exec(res.text);
  if (!login) throw new Error(`no sign-in page on ${path}: ${res.status}`);
  const form = new URLSearchParams({ csrf: csrfFrom(res.text), username: who.username, password: who.password });
  const page = await followOnServer(
    t,
    agent,
    await agent.post(`/interaction/${login[1]}/login`).type('form').set('Accept', 'text/html').send(form.toString()),
  );
  return { agent, page };
}
