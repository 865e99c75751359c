import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { FhirServer } from '../../../platform/config/schema.js';
import { PageError } from '../../../platform/http/error-page.js';
import { renderView } from '../../../platform/http/views.js';
import type { InteractionCsrf } from './csrf.js';
import { EXPIRED, finish, type Interaction } from './interaction-http.js';
import type { UserStore } from '../../../records/directory/user-store.js';
import type { Coding } from '../../../domain/fhir/types.js';
import { authorizationFacts, type AuthorizationFacts } from '../facts/authorization-facts.js';
import { RecordError, type ContextRecorder } from '../record-context/context-recorder.js';
import type { FhirDirectory } from '../fhir-search/fhir-directory.js';
import type { ConsentGateDeps, ConsentLifetimes, RememberMode } from '../consent/consent-gate.js';
import { picksOf } from '../facts/picks.js';
import { userContextOf } from '../facts/user-context.js';

/** What the patient picker, encounter picker and consent pages share. */
export interface SmartPageDeps {
  provider: Provider;
  csrf: InteractionCsrf;
  users: Pick<UserStore, 'get' | 'effectiveRoles'>;
  recorder: ContextRecorder;
  directory: Pick<FhirDirectory, 'searchPatients' | 'patientsAt' | 'readPatient' | 'encountersOf' | 'readEncounter'>;
  fhirServers: readonly FhirServer[];
  /** Relative fhirUser values are made absolute on this base, as the account claims do. */
  fhirUserBase: string;
  /** The HCS policy's staff roles: who may grant user/ scopes (facts/user-context.ts). */
  staffRoles: readonly Coding[];
  /** Patient consents: Allow and Deny are recorded, a covering one spares the page (consent/consent-gate.ts). */
  consents: ConsentGateDeps;
  consentLifetimes: ConsentLifetimes;
  /** When a covering Consent spares the page (config consents.remember; default `silent`). */
  rememberConsent?: RememberMode;
  /** This server's issuer: its own management client redirects here and nowhere else. */
  issuer: string;
  /** Breaking the glass needs a second factor verified within this many seconds (config mfa). */
  breakTheGlassFreshSeconds: number;
  logger?: Logger;
}

export interface PageFacts extends AuthorizationFacts {
  clientName: string;
  /** Client metadata as registered; the consent page decides what is safe to show. */
  logoUri?: string;
  clientUri?: string;
  redirectUris: string[];
}

/** The facts of the authorization an interaction belongs to, as the prompt checks saw them. */
export async function factsFor(deps: SmartPageDeps, interaction: Interaction): Promise<PageFacts> {
  const accountId = interaction.session?.accountId;
  const clientId = typeof interaction.params.client_id === 'string' ? interaction.params.client_id : undefined;
  if (!accountId || !clientId) throw new PageError(400, 'invalid_request', EXPIRED);
  const client = await deps.provider.Client.find(clientId);
  if (!client) throw new PageError(400, 'invalid_request', EXPIRED);
  const [record, roles] = await Promise.all([deps.users.get(accountId), deps.users.effectiveRoles(accountId)]);
  const user = userContextOf(record, deps.fhirUserBase, roles, { staffRoles: deps.staffRoles });
  const facts = authorizationFacts({
    accountId,
    params: interaction.params,
    client: client as unknown as { clientId: string; smart_scopes?: unknown; smart_remember_consent?: unknown },
    user,
    picks: picksOf(interaction.lastSubmission),
    fhirServers: deps.fhirServers,
  });
  return {
    ...facts,
    clientName: client.clientName ?? clientId,
    ...(typeof client.logoUri === 'string' ? { logoUri: client.logoUri } : {}),
    ...(typeof client.clientUri === 'string' ? { clientUri: client.clientUri } : {}),
    redirectUris: [...(client.redirectUris ?? [])],
  };
}

export async function renderPage(ctx: Context, view: string, status: number, data: Record<string, unknown>): Promise<void> {
  ctx.status = status;
  ctx.type = 'html';
  ctx.body = await renderView(view, data);
}

/** Ends the authorization with an OAuth error the app receives at its redirect_uri. */
export async function failToApp(ctx: Context, provider: Provider, error: string, description: string): Promise<void> {
  await finish(ctx, provider, { error, error_description: description }, { merge: false });
}

/** Runs `step`; a RecordError (a launch gone, nothing grantable) ends the authorization at the app. */
export async function orFailToApp(ctx: Context, provider: Provider, step: () => Promise<void>): Promise<void> {
  try {
    await step();
  } catch (err) {
    if (!(err instanceof RecordError)) throw err;
    await failToApp(ctx, provider, err.error, err.description);
  }
}
