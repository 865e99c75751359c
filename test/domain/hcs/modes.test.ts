import { randomUUID } from 'node:crypto';
import {
  authorizeThroughPages,
  browse,
  exchange,
  exchangeCode,
  inputValues,
  launchStoreOf,
  postForm,
  startAuthorization,
} from '../../support/smart-flow.js';
import { passSecondFactor } from '../../support/second-factor.js';
import { APP, createHcsApp, introspect, newUser, params, registerApp, type HcsApp } from './support.js';

/**
 * Each check and rule runs in one of three modes, so a hospital can roll a rule out safely:
 * enforce (refuse / apply), audit-only (log what would happen, let it pass / not apply), disabled.
 */

const apps: HcsApp[] = [];

async function app(env: Record<string, string>, policy?: unknown): Promise<HcsApp> {
  const h = await createHcsApp(env, policy);
  apps.push(h);
  await registerApp(h.t, APP, { purposes_of_use: ['TREAT', 'HRESCH'] });
  return h;
}

afterAll(async () => {
  for (const h of apps) await h.t.close();
});

function findings(h: HcsApp): Array<{ check: string; detail: string }> {
  return h.logs
    .filter((l) => l.msg === 'HCS policy findings (audit-only)')
    .flatMap((l) => l.findings as Array<{ check: string; detail: string }>);
}

async function userFlow(h: HcsApp, smart: Record<string, unknown>, purpose: string, clientId = APP) {
  const who = await newUser(h.t, { fhirUser: `Practitioner/dr-${randomUUID().slice(0, 6)}`, staff: true, ...smart });
  return authorizeThroughPages(h.t, params(clientId, 'openid fhirUser user/*.rs', { purpose_of_use: purpose }), who);
}

async function purposesOf(h: HcsApp, flow: Awaited<ReturnType<typeof userFlow>>, clientId = APP): Promise<string[]> {
  const token = await exchangeCode(h.t, flow, params(clientId, ''));
  const ext = (await introspect(h.t, token.body.access_token)).extensions as { ihe_iua: { purpose_of_use: Array<{ code: string }> } };
  return ext.ihe_iua.purpose_of_use.map((c) => c.code);
}

describe('the user purpose check', () => {
  test('enforce: refused', async () => {
    const h = await app({});
    expect((await userFlow(h, { purposesOfUse: ['TREAT'] }, 'HRESCH')).error).toBe('invalid_request');
  });

  test('audit-only: granted as asked, and the finding is logged', async () => {
    const h = await app({ AUTHZ_HCS_CHECK_USER_PURPOSES: 'audit-only' });
    const flow = await userFlow(h, { purposesOfUse: ['TREAT'] }, 'HRESCH');
    expect(await purposesOf(h, flow)).toEqual(['HRESCH']);
    expect(findings(h)).toEqual([{ check: 'userPurposes', detail: 'you are not permitted to assert purpose of use HRESCH' }]);
    expect(await h.t.metrics.registry.getSingleMetricAsString('hcs_policy_findings_total')).toContain(
      'hcs_policy_findings_total{check="userPurposes"} 1',
    );
  });

  test('disabled: granted, nothing logged', async () => {
    const h = await app({ AUTHZ_HCS_CHECK_USER_PURPOSES: 'disabled' });
    const flow = await userFlow(h, { purposesOfUse: ['TREAT'] }, 'HRESCH');
    expect(await purposesOf(h, flow)).toEqual(['HRESCH']);
    expect(findings(h)).toEqual([]);
  });
});

describe('the client purpose check (at the authorization endpoint)', () => {
  test('audit-only lets an unregistered purpose through, logged; disabled silently', async () => {
    for (const mode of ['audit-only', 'disabled'] as const) {
      const h = await app({ AUTHZ_HCS_CHECK_CLIENT_PURPOSES: mode });
      const flow = await userFlow(h, { purposesOfUse: ['TREAT', 'PUBHLTH'] }, 'PUBHLTH');
      expect(await purposesOf(h, flow)).toEqual(['PUBHLTH']);
      const logged = findings(h).filter((f) => f.check === 'clientPurposes');
      expect(logged).toEqual(
        mode === 'audit-only'
          ? [{ check: 'clientPurposes', detail: `purpose of use PUBHLTH is not registered for client ${APP} (purposes_of_use)` }]
          : [],
      );
    }
  });
});

describe('the break-the-glass check', () => {
  test('audit-only: an unpermitted clinician still gets emergency access (with a reason), logged', async () => {
    const h = await app({ AUTHZ_HCS_CHECK_BREAK_THE_GLASS: 'audit-only' });
    await registerApp(h.t, 'er-app', { purposes_of_use: ['ETREAT'] });
    const who = await newUser(h.t, { fhirUser: `Practitioner/dr-${randomUUID().slice(0, 6)}`, staff: true });
    const launch = await launchStoreOf(h.t).create({
      patient: 'pat-er',
      clientId: 'er-app',
      createdBy: 'ehr',
      aud: params('er-app', '').aud!,
    });
    const { agent, first, verifier } = await startAuthorization(
      h.t,
      params('er-app', 'launch openid fhirUser patient/*.rs', { launch, purpose_of_use: 'ETREAT' }),
    );
    const login = await browse(agent, first);
    if (login.kind !== 'page') throw new Error('expected the login page');
    // Emergency access needs a fresh second factor: set up on the way (test/support/second-factor.ts).
    const consent = await passSecondFactor(
      agent,
      who.username,
      await browse(agent, await postForm(agent, login.uid, 'login', login.res, { username: who.username, password: who.password })),
    );
    if (consent.kind !== 'page') throw new Error('expected the consent page');
    const done = await browse(
      agent,
      await postForm(agent, consent.uid, 'consent', consent.res, {
        decision: 'allow',
        scope: inputValues(consent.res.text, 'checkbox', 'scope'),
        reason: 'Trauma bay, patient unresponsive',
      }),
    );
    if (done.kind !== 'app' || !done.code) throw new Error('expected a code');
    const token = await exchange(h.t, done.code, verifier, params('er-app', ''));
    expect(((await introspect(h.t, token.body.access_token)).extensions as { smart_authz_hcs: unknown }).smart_authz_hcs).toMatchObject({
      break_the_glass: true,
    });
    expect(findings(h)).toEqual([
      { check: 'breakTheGlass', detail: 'you are not permitted to break the glass (purpose of use ETREAT); ask your administrator' },
    ]);
  });
});

describe('policy rules', () => {
  test('audit-only: the obligations are not applied, what they would have been is logged; disabled: neither', async () => {
    for (const mode of ['audit-only', 'disabled'] as const) {
      const h = await app(
        {},
        { rules: [{ id: 'research-deidentified', mode, purposes: ['HRESCH'], obligations: ['DEID', 'NOREUSE'], ceiling: 'L' }] },
      );
      const flow = await userFlow(h, { purposesOfUse: ['HRESCH'], clearance: 'N' }, 'HRESCH');
      const token = await exchangeCode(h.t, flow, params(APP, ''));
      const hcs = (
        (await introspect(h.t, token.body.access_token)).extensions as {
          smart_authz_hcs: { obligations: unknown[]; confidentiality: { code: string } };
        }
      ).smart_authz_hcs;
      expect(hcs.obligations).toEqual([]);
      expect(hcs.confidentiality.code).toBe('N');
      expect(findings(h)).toEqual(
        mode === 'audit-only'
          ? [{ check: 'rule', detail: 'rule research-deidentified (audit-only) would add DEID, NOREUSE, ceiling L' }]
          : [],
      );
    }
  });

  test('enforce: applied', async () => {
    const h = await app({}, { rules: [{ id: 'research-deidentified', purposes: ['HRESCH'], obligations: ['DEID'], ceiling: 'L' }] });
    const flow = await userFlow(h, { purposesOfUse: ['HRESCH'], clearance: 'N' }, 'HRESCH');
    const token = await exchangeCode(h.t, flow, params(APP, ''));
    expect(((await introspect(h.t, token.body.access_token)).extensions as { smart_authz_hcs: unknown }).smart_authz_hcs).toMatchObject({
      confidentiality: { code: 'L' },
      obligations: [{ code: 'DEID' }],
    });
  });
});
