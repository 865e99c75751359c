import type { Client, KoaContextWithOIDC } from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { FhirServer } from '../../platform/config/schema.js';
import { findFhirServer, normaliseBase } from '../../oauth/provider/fhir-servers.js';
import { isOwnApi, ownApiAudience } from '../../oauth/provider/own-api.js';
import type { LaunchStore } from './launch-store.js';
import { isManageClient } from '../../oauth/clients/manage-client.js';
import { PurposeInputError, purposeParameter } from '../../domain/hcs/purpose-input.js';
import { listPermits, type HcsPolicy } from '../../domain/hcs/policy.js';
import { clientHcsFacts, type ClientHcsMetadata } from '../../domain/hcs/client-facts.js';

/**
 * SMART rules on the authorization request, run by oidc-provider after its own checks (client,
 * redirect_uri, PKCE, scope), so a failure redirects back to the app with `error` and never with
 * a code:
 *
 * - `aud` names a configured FHIR base the client may use (one trailing slash tolerated), or this
 *   server's own API (`<issuer>/fhir`: Consent, Provenance, AuditEvent; oauth/provider/own-api.ts), and
 *   becomes the resource indicator; `resource` is accepted as a synonym; one of them is required.
 * - `launch` is a live launch value made for this app and this `aud`: every launch is bound to one
 *   FHIR server when the EHR creates it, and `aud` must name exactly that one. The `launch` scope
 *   and the `launch` parameter come together or not at all.
 * - `purpose_of_use`, when sent, is a space-separated list of v3-PurposeOfUse codes, bare (TREAT)
 *   or system-qualified (urn:oid:2.16.840.1.113883.5.8#TREAT), each one registered for the client
 *   when it lists `purposes_of_use` (the HCS policy's clientPurposes check and its mode). The user's
 *   own permission is checked once they have signed in (domain/hcs/decision.ts); the consent page shows the
 *   purpose, the Consent records it and the tokens carry it.
 *
 * The internal management client (manage/) names no FHIR server: `aud` does not apply to it.
 */

type SmartClient = Client & { fhir_servers?: string[] };

/**
 * The codes of a `purpose_of_use` parameter, checked: known v3-PurposeOfUse codes, at most a few,
 * and among the client's registered `purposes_of_use` when it has any (per the policy's mode).
 */
export function purposesOfUse(value: string, client: ClientHcsMetadata, policy: HcsPolicy): string[] {
  let codes: string[];
  try {
    codes = purposeParameter(value);
  } catch (err) {
    if (err instanceof PurposeInputError) throw new errors.InvalidRequest(`purpose_of_use: ${err.message}`);
    throw err;
  }
  const mode = policy.checks.clientPurposes;
  const registered = clientHcsFacts(client).purposes;
  const unregistered = registered && mode !== 'disabled' ? codes.filter((c) => !listPermits(registered, c, policy.permitDescendants)) : [];
  // Enforced here, before anyone signs in; an audit-only finding is logged once, with the grant
  // it ends up in (domain/hcs/decision.ts runs the same check then).
  if (unregistered.length && mode === 'enforce')
    throw new errors.InvalidRequest(`purpose_of_use ${shown(unregistered.join(' '))} is not registered for this app`);
  return codes;
}

const MAX_ECHO = 200;

function shown(value: string): string {
  return value.length > MAX_ECHO ? `${value.slice(0, MAX_ECHO)}…` : value;
}

/** Where an app may send tokens: the configured FHIR servers and this server's own API. */
export interface Audiences {
  fhirServers: readonly FhirServer[];
  issuer: string;
}

/**
 * The canonical base `aud` names, if this client may use it; else the reason it may not. The own
 * API is open to any app: what it may read there is bounded by its Consent/Provenance/AuditEvent
 * scopes, which its registration must list (app/provider-configuration.ts narrows the grant to them).
 */
function audienceFor(audiences: Audiences, client: Client | undefined, aud: string): string {
  if (isOwnApi(audiences.issuer, aud)) return ownApiAudience(audiences.issuer);
  const server = findFhirServer(audiences.fhirServers, aud);
  const allowed = (client as SmartClient | undefined)?.fhir_servers;
  if (!server || (allowed && !allowed.includes(server.base))) {
    throw new errors.InvalidRequest(`aud ${shown(aud)} is not a FHIR server this app may use`);
  }
  return server.base;
}

/**
 * oidc-provider's `defaultResource` at the authorization endpoint: the resource indicator is the
 * base `aud` names, so the grant, the code and the token all carry its canonical form. Called
 * only when `resource` is absent.
 */
export function audAsResource(audiences: Audiences) {
  return (ctx: KoaContextWithOIDC, client: Client | undefined): string => {
    const aud = (ctx.oidc.params as { aud?: unknown }).aud;
    if (typeof aud !== 'string' || !aud) {
      throw new errors.InvalidRequest('aud is required: the base URL of the FHIR server the app wants to use');
    }
    return audienceFor(audiences, client, aud);
  };
}

export interface AuthorizeRuleDeps extends Audiences {
  launches: Pick<LaunchStore, 'get'>;
  hcs: HcsPolicy;
}

/** oidc-provider `extraParams`: validators run for every authorization request, present or not. */
export function smartAuthorizationParams(deps: AuthorizeRuleDeps) {
  return {
    async aud(ctx: KoaContextWithOIDC, value: string | undefined, client: Client): Promise<void> {
      if (isManageClient(client.clientId)) return;
      const resource = (ctx.oidc.params as { resource?: unknown }).resource;
      if (value === undefined || value === '') {
        if (resource === undefined)
          throw new errors.InvalidRequest('aud is required: the base URL of the FHIR server the app wants to use');
        return;
      }
      const audience = audienceFor(deps, client, value);
      if (typeof resource !== 'string' || normaliseBase(resource) !== audience) {
        throw new errors.InvalidRequest('aud and resource must name the same FHIR server');
      }
    },

    // Set only by this server (authorize-request.ts strips what a client sends): marks its own prompt=consent.
    async smart_added_prompt(_ctx: KoaContextWithOIDC, value: string | undefined): Promise<void> {
      if (value !== undefined && value !== 'consent') throw new errors.InvalidRequest('smart_added_prompt is not a client parameter');
    },

    async purpose_of_use(_ctx: KoaContextWithOIDC, value: string | undefined, client: Client): Promise<void> {
      if (value === undefined || value === '') return;
      purposesOfUse(value, client as unknown as ClientHcsMetadata, deps.hcs);
    },

    async launch(ctx: KoaContextWithOIDC, value: string | undefined, client: Client): Promise<void> {
      const scopes = ctx.oidc.requestParamScopes;
      if (value === undefined || value === '') {
        if (scopes.has('launch')) throw new errors.InvalidRequest('the launch scope needs the launch parameter the EHR gave the app');
        return;
      }
      if (!scopes.has('launch')) throw new errors.InvalidRequest('a launch parameter needs the launch scope');
      const launch = await deps.launches.get(value);
      if (!launch) throw new errors.InvalidRequest('launch is unknown, expired or already used');
      if (launch.clientId !== undefined && launch.clientId !== client.clientId) {
        throw new errors.InvalidRequest('launch was made for a different app');
      }
      const params = ctx.oidc.params as { aud?: unknown; resource?: unknown };
      const target = typeof params.aud === 'string' && params.aud ? params.aud : params.resource;
      if (typeof target !== 'string' || normaliseBase(target) !== launch.aud) {
        throw new errors.InvalidRequest('launch was made for a different FHIR server than aud');
      }
    },
  };
}
