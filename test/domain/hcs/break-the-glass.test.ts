import { createHmac, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  browse,
  exchange,
  inputValues,
  grantContextsOf,
  launchStoreOf,
  postForm,
  startAuthorization,
  startAuthorizationIn,
  type Agent,
} from '../../support/smart-flow.js';
import { ageSessions, passSecondFactor, secondFactorsOf } from '../../support/second-factor.js';
import type { TestApp } from '../../support/test-app.js';
import { ACT_REASON, APP, createHcsApp, introspect, newUser, params, registerApp, type HcsApp } from './support.js';
import { WEBHOOK_SIGNATURE_HEADER } from '../../../src/domain/hcs/break-the-glass.js';
import { auditEventProblems } from '../../../src/records/audit/audit-event.js';
import { readTrail } from '../../records/audit/trail-reader.js';

/**
 * Break the glass: a permitted clinician asserts ETREAT/BTG, must type a reason on the consent
 * page, gets a short-lived token without refresh, and the event is flagged (warn log, webhook).
 */

let h: HcsApp;
let t: TestApp;
let hook: Server;
const received: Array<{ body: string; signature: string | undefined }> = [];
const SECRET = 'a-webhook-secret-that-is-long-enough-0123';
const ER_ROLE = { system: 'http://snomed.info/sct', code: '309294001', display: 'Accident and Emergency doctor' };

beforeAll(async () => {
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      received.push({ body, signature: req.headers[WEBHOOK_SIGNATURE_HEADER.toLowerCase()] as string | undefined });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/alerts`;
  h = await createHcsApp(
    { AUTHZ_BTG_ACCESS_TOKEN_TTL: '600', AUTHZ_BTG_WEBHOOK_URL: url, AUTHZ_BTG_WEBHOOK_SECRET: SECRET },
    { breakTheGlass: { roles: [ER_ROLE] } },
  );
  t = h.t;
  await registerApp(t, APP, { purposes_of_use: ['TREAT', 'ETREAT'] });
});

afterAll(async () => {
  await t.close();
  await new Promise((r) => hook.close(r));
});

function clinician(extra: Record<string, unknown>) {
  return newUser(t, {
    fhirUser: `Practitioner/dr-${randomUUID().slice(0, 6)}`,
    staff: true,
    purposesOfUse: ['TREAT'],
    clearance: 'N',
    ...extra,
  });
}

/** Signs in and stops on the consent page of an emergency EHR launch. */
async function toConsent(
  who: { username: string; password: string },
  purpose = 'BTG',
  scope = 'launch openid fhirUser patient/*.rs offline_access',
  patient = `pat-${randomUUID().slice(0, 6)}`,
) {
  const launch = await launchStoreOf(t).create({ patient, clientId: APP, createdBy: 'ehr', aud: params(APP, '').aud! });
  const { agent, first, verifier } = await startAuthorization(t, params(APP, scope, { launch, purpose_of_use: purpose }));
  const login = await browse(agent, first);
  if (login.kind !== 'page') throw new Error('expected the login page');
  const next = await passSecondFactor(
    agent,
    who.username,
    await browse(agent, await postForm(agent, login.uid, 'login', login.res, { username: who.username, password: who.password })),
  );
  return { agent, verifier, patient, next };
}

async function allow(agent: Agent, page: Extract<Awaited<ReturnType<typeof browse>>, { kind: 'page' }>, fields: Record<string, string>) {
  // Every offered choice ticked, plus offline_access, which an emergency must not get even if posted.
  return postForm(agent, page.uid, 'consent', page.res, {
    decision: 'allow',
    scope: [...inputValues(page.res.text, 'checkbox', 'scope'), 'offline_access'],
    ...fields,
  });
}

async function waitFor<T>(probe: () => T | undefined, ms = 3000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a permitted clinician: reason required, short-lived token, no refresh, flagged for review', async () => {
  const who = await clinician({ breakTheGlass: true });
  const { agent, verifier, patient, next } = await toConsent(who);
  if (next.kind !== 'page' || next.prompt !== 'consent') throw new Error('expected the consent page');
  expect(next.res.text).toContain('id="btg-reason"');
  expect(next.res.text).toContain('<strong>Why:</strong> for emergency access (“break the glass”).');
  // Refresh cannot be chosen in an emergency.
  expect(next.res.text).not.toContain('value="offline_access"');

  // No reason, then one too short: the same page again, 400, nothing granted.
  for (const reason of ['', 'urgent']) {
    const again = await allow(agent, next, { reason });
    expect(again.status).toBe(400);
    expect(again.text).toContain('role="alert"');
    expect(again.text).toContain('id="btg-reason"');
    expect(again.headers.location).toBeUndefined();
  }

  const reason = 'Unconscious patient in the emergency department, allergies unknown';
  const done = await browse(agent, await allow(agent, next, { reason }));
  if (done.kind !== 'app' || !done.code)
    throw new Error(`expected a code, got ${done.kind} ${done.kind === 'app' ? done.location.href : ''}`);
  const token = await exchange(t, done.code, verifier, params(APP, ''));
  expect(token.status).toBe(200);
  expect(token.body.expires_in).toBe(600);
  expect(token.body.refresh_token).toBeUndefined();
  expect(token.body.scope.split(' ')).not.toContain('offline_access');
  expect(token.body.patient).toBe(patient);

  const active = await introspect(t, token.body.access_token);
  const ext = active.extensions as { ihe_iua: { purpose_of_use: unknown }; smart_authz_hcs: Record<string, unknown> };
  expect(ext.ihe_iua.purpose_of_use).toEqual([{ system: ACT_REASON, code: 'BTG', display: 'break the glass' }]);
  expect(ext.smart_authz_hcs).toMatchObject({
    break_the_glass: true,
    // Emergency access may see restricted data, above the user's everyday clearance N.
    confidentiality: { code: 'R' },
    obligations: [expect.objectContaining({ code: 'AUDTR' }), expect.objectContaining({ code: 'DELAU' })],
  });
  // The reason is stored with the grant, never put into tokens.
  expect(JSON.stringify(active)).not.toContain('Unconscious');
  const grantId = (await t.app.AccessToken.find(token.body.access_token))!.grantId!;
  expect((await grantContextsOf(t).get(grantId))?.breakTheGlass).toEqual({ reason, at: expect.any(String) });

  const line = h.logs.find((l) => (l.breakTheGlass as { grantId?: string } | undefined)?.grantId === grantId);
  expect(line).toMatchObject({
    level: 40,
    msg: 'break the glass: emergency access granted, flagged for review',
    breakTheGlass: { clientId: APP, patient, reason, purposes: ['BTG'] },
  });

  expect(await t.metrics.registry.getSingleMetricAsString('hcs_break_the_glass_total')).toMatch(/^hcs_break_the_glass_total [1-9]/m);

  // In the audit trail before the app got its code: a Security Alert with the reason, and the
  // token's issuance carrying the emergency purpose of use.
  const trail = await readTrail(t);
  const alertEvent = trail.find((e) => e.subtype?.some((s) => s.code === 'break-the-glass') && JSON.stringify(e).includes(reason));
  expect(alertEvent).toMatchObject({
    type: { code: '110113', display: 'Security Alert' },
    outcomeDesc: `break-the-glass: ${reason}`,
    purposeOfEvent: expect.arrayContaining([{ coding: [expect.objectContaining({ code: 'BTG' })] }]),
  });
  expect(auditEventProblems(alertEvent)).toEqual([]);
  expect(JSON.stringify(alertEvent)).toContain(`Patient/${patient}`);
  const issued = trail.filter((e) => e.subtype?.some((s) => s.code === 'token-issued') && JSON.stringify(e).includes(`Patient/${patient}`));
  expect(issued.length).toBe(1);
  expect(JSON.stringify(issued[0]!.agent)).toContain('"code":"BTG"');

  const alert = await waitFor(() => received.find((r) => r.body.includes(grantId)));
  expect(JSON.parse(alert.body)).toMatchObject({ type: 'break-the-glass', grantId, clientId: APP, patient, reason, purposes: ['BTG'] });
  expect(alert.signature).toBe(`sha256=${createHmac('sha256', SECRET).update(alert.body).digest('hex')}`);
});

test('a role named in the policy also permits it; the page is shown every time, even with a covering consent', async () => {
  const who = await clinician({ roles: [ER_ROLE] });
  const patient = `pat-${randomUUID().slice(0, 6)}`;
  for (let i = 0; i < 2; i++) {
    const { agent, next } = await toConsent(who, 'ETREAT', 'launch openid fhirUser patient/*.rs', patient);
    if (next.kind !== 'page' || next.prompt !== 'consent') throw new Error(`round ${i}: expected the consent page`);
    const done = await browse(agent, await allow(agent, next, { reason: 'Cardiac arrest on ward 3, need medication history' }));
    expect(done.kind === 'app' && done.code).toBeTruthy();
  }
});

test('a clinician without the permission is refused (invalid_request), before any page asks for a reason', async () => {
  const who = await clinician({});
  const { next } = await toConsent(who);
  if (next.kind !== 'app') throw new Error(`expected a redirect to the app, got ${next.kind}`);
  expect(next.location.searchParams.get('error')).toBe('invalid_request');
  expect(next.location.searchParams.get('error_description')).toBe(
    'you are not permitted to break the glass (purpose of use BTG); ask your administrator',
  );
  expect(next.code).toBeUndefined();
});

test('prompt=none never breaks the glass silently', async () => {
  const who = await clinician({ breakTheGlass: true });
  // An SSO session first, through a normal launch.
  const { agent, next } = await toConsent(who, 'TREAT', 'launch openid fhirUser patient/*.rs');
  if (next.kind !== 'page') throw new Error('expected the consent page');
  await browse(agent, await allow(agent, next, {}));
  const launch = await launchStoreOf(t).create({ patient: 'pat-none', clientId: APP, createdBy: 'ehr', aud: params(APP, '').aud! });
  const { first } = await startAuthorizationIn(
    agent,
    params(APP, 'launch openid fhirUser patient/*.rs', { launch, purpose_of_use: 'BTG', prompt: 'none' }),
  );
  const back = await browse(agent, first);
  if (back.kind !== 'app') throw new Error('expected a redirect to the app');
  // The session's sign-in had no second factor: that is asked for first, and cannot be silently.
  expect(back.location.searchParams.get('error')).toBe('login_required');
});

test('break the glass demands a fresh second factor: an older one is asked for again, and the AuditEvent records it', async () => {
  const who = await clinician({ breakTheGlass: true });
  const patient = `pat-${randomUUID().slice(0, 6)}`;
  // A first emergency: a second factor is set up on the way, the glass is broken.
  const { agent, next } = await toConsent(who, 'BTG', 'launch openid fhirUser patient/*.rs', patient);
  if (next.kind !== 'page' || next.prompt !== 'consent') throw new Error('expected the consent page');
  const firstDone = await browse(agent, await allow(agent, next, { reason: 'Unconscious patient in the emergency department' }));
  expect(firstDone.kind === 'app' && firstDone.code).toBeTruthy();
  // Ten minutes later (the window is five), an emergency.
  await ageSessions(t, who.id, 600);
  const launch = await launchStoreOf(t).create({ patient, clientId: APP, createdBy: 'ehr', aud: params(APP, '').aud! });
  const { first } = await startAuthorizationIn(
    agent,
    params(APP, 'launch openid fhirUser patient/*.rs', { launch, purpose_of_use: 'BTG' }),
  );
  const stepUp = await browse(agent, first);
  if (stepUp.kind !== 'page') throw new Error(`expected the second-factor page, got ${stepUp.kind}`);
  expect(stepUp.prompt).toBe('second_factor');
  expect(stepUp.res.text).toContain('Emergency access needs a second factor verified within the last 5 minutes');
  expect(stepUp.res.text).not.toContain('name="password"');
  const consent = await passSecondFactor(agent, who.username, stepUp);
  if (consent.kind !== 'page' || consent.prompt !== 'consent') throw new Error('expected the consent page');

  // The page sat open past the window: Allow is refused, nothing is granted.
  await ageSessions(t, who.id, 600);
  const late = await allow(agent, consent, { reason: 'Unconscious patient in the emergency department, allergies unknown' });
  expect(late.status).toBe(403);
  expect(late.text).toContain('Emergency access needs a second factor verified within the last 5 minutes');

  // Fresh again: granted, and the alert names the factor and when it was verified.
  const again = await launchStoreOf(t).create({ patient, clientId: APP, createdBy: 'ehr', aud: params(APP, '').aud! });
  const retry = await startAuthorizationIn(
    agent,
    params(APP, 'launch openid fhirUser patient/*.rs', { launch: again, purpose_of_use: 'BTG' }),
  );
  // A third code within one 30-second step is not to be had: a recovery code stands in for it.
  const retryPage = await browse(agent, retry.first);
  if (retryPage.kind !== 'page' || retryPage.prompt !== 'second_factor') throw new Error('expected the second-factor page');
  const [recovery] = await secondFactorsOf(t).newRecoveryCodes(who.id);
  const retryConsent = await browse(
    agent,
    await postForm(agent, retryPage.uid, 'second-factor', retryPage.res, { method: 'recovery', code: recovery! }),
  );
  if (retryConsent.kind !== 'page' || retryConsent.prompt !== 'consent') throw new Error('expected the consent page');
  const reason = `Collapsed in the waiting room ${randomUUID().slice(0, 6)}`;
  const done = await browse(agent, await allow(agent, retryConsent, { reason }));
  expect(done.kind === 'app' && done.code).toBeTruthy();
  const alertEvent = (await readTrail(t)).find(
    (e) => e.subtype?.some((s) => s.code === 'break-the-glass') && JSON.stringify(e).includes(reason),
  );
  const detail = Object.fromEntries(
    (alertEvent!.entity ?? []).flatMap((e) => (e.detail ?? []).map((d) => [d.type, (d as { valueString?: string }).valueString])),
  );
  expect(detail.second_factor_amr).toBe('pwd otp mfa');
  expect(Math.abs(Date.parse(detail.second_factor_at!) - Date.now())).toBeLessThan(60_000);
  expect(auditEventProblems(alertEvent)).toEqual([]);
});
