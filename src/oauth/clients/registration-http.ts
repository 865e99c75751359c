import type { Context, Next } from 'koa';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { applyKindDefaults, isSmartClientKind } from './client-kinds.js';
import {
  CEILING_PROPERTY,
  administrativeReason,
  asCeiling,
  assertWithinCeiling,
  markRegistrationPolicyApplied,
  type RegistrationCeiling,
} from './registration-policy.js';
import type { RegistrationTokens } from './registration-tokens.js';
import { generateClientSecret, isHashedClientSecret, verifyClientSecret } from './secrets.js';
import { readStandardMetadata } from './standard-metadata.js';
import { parseSize } from '../../platform/http/body-limit.js';
import { readJson, type BodyRules, type JsonProblem } from '../../platform/http/body.js';
import { OAuthError } from '../../platform/http/oauth-error.js';

type NeedsSecret = { needsSecret(metadata: Record<string, unknown>): boolean };
type ClientModel = NeedsSecret & { validate(metadata: Record<string, unknown>): Promise<void> };
type InitialAccessTokenEntity = { jti?: string; destroy(): Promise<void> };

export interface RegistrationPolicyDeps {
  tokens: Pick<RegistrationTokens, 'policyOf' | 'takeUse'>;
}

/** Fill OAuth metadata from the SMART client kind, then settle the secret, which oidc-provider decided on *before* policies ran (a backend service must not get one). */
function settleKindAndSecret(ctx: KoaContextWithOIDC, properties: Record<string, unknown>): void {
  Object.assign(properties, applyKindDefaults(properties));
  const Client = ctx.oidc.provider.Client as unknown as NeedsSecret;
  if (!Client.needsSecret(properties)) {
    delete properties.client_secret;
    delete properties.client_secret_expires_at;
  } else if (typeof properties.client_secret !== 'string') {
    properties.client_secret = generateClientSecret();
    properties.client_secret_expires_at = 0;
  }
}

const USED_UP = 'initial access token has no registrations left';
const VIA_TOKEN = 'this initial access token';
const VIA_RECORDED = 'the initial access token this client was registered with';

/**
 * Reads standard metadata (`scope`, a kind inferred from the auth method and grants), fills what
 * the kind implies and holds the result to `ceiling`. Runs once the ceiling is known, so a request
 * with a spent or unknown token is answered as such whatever its metadata says.
 */
function boundMetadata(
  ctx: KoaContextWithOIDC,
  properties: Record<string, unknown>,
  ceiling: RegistrationCeiling,
  via: string,
  currentScopes?: string[],
): void {
  const allowedKinds = `${via} allows ${ceiling.kinds.join(', ') || 'no kind'}`;
  const reading = readStandardMetadata(properties, { allowedKinds, ...(currentScopes ? { currentScopes } : {}) });
  settleKindAndSecret(ctx, properties);
  assertWithinCeiling(properties, ceiling, via, reading.inferredKindBasis);
  properties[CEILING_PROPERTY] = ceiling;
}

/**
 * RFC 7591: the initial access token's own policy bounds the registration, and one of its uses is
 * taken atomically only once the metadata is known to be valid (a refused request costs none).
 * The ceiling is remembered on the client for later RFC 7592 updates.
 */
async function applyTokenPolicy(ctx: KoaContextWithOIDC, properties: Record<string, unknown>, deps: RegistrationPolicyDeps): Promise<void> {
  const iat = ctx.oidc.entities.InitialAccessToken as unknown as InitialAccessTokenEntity | undefined;
  if (!iat?.jti) throw new errors.InvalidToken('initial access token not found');
  const policy = await deps.tokens.policyOf(iat.jti);
  if (!policy) throw new errors.InvalidToken(USED_UP);
  boundMetadata(ctx, properties, { kinds: policy.kinds, scopes: policy.scopes }, VIA_TOKEN);
  await (ctx.oidc.provider.Client as unknown as ClientModel).validate(properties);
  const left = await deps.tokens.takeUse(iat.jti);
  if (left === undefined) throw new errors.InvalidToken(USED_UP);
  if (left === 0) await iat.destroy();
}

/**
 * RFC 7592: an update stays within the ceiling the client was registered under, whatever its
 * body says about that ceiling. A client registered before ceilings were recorded is held to
 * its own kind and non-administrative scopes: it can keep or narrow them, never raise them.
 */
function applyRecordedCeiling(ctx: KoaContextWithOIDC, properties: Record<string, unknown>): void {
  const client = ctx.oidc.client as unknown as Record<string, unknown> | undefined;
  if (!client) throw new errors.InvalidToken('client not found');
  boundMetadata(ctx, properties, asCeiling(client[CEILING_PROPERTY]) ?? ownCeiling(client), VIA_RECORDED, scopesOf(client));
}

function scopesOf(client: Record<string, unknown>): string[] {
  return Array.isArray(client.smart_scopes) ? client.smart_scopes.filter((s): s is string => typeof s === 'string') : [];
}

function ownCeiling(client: Record<string, unknown>): RegistrationCeiling {
  const kind = client.smart_client_kind;
  return { kinds: isSmartClientKind(kind) ? [kind] : [], scopes: scopesOf(client).filter((s) => !administrativeReason(s)) };
}

/**
 * Registration policy run by oidc-provider for every RFC 7591/7592 write made with our initial
 * access tokens (and the registration access tokens they lead to). Anything but those two routes
 * is refused: the policy has no ceiling to apply there.
 */
export function smartRegistrationPolicy(deps: RegistrationPolicyDeps) {
  return async function registrationPolicy(ctx: KoaContextWithOIDC, properties: Record<string, unknown>): Promise<void> {
    switch (ctx.oidc.route) {
      case 'registration':
        await applyTokenPolicy(ctx, properties, deps);
        break;
      case 'client_update':
        applyRecordedCeiling(ctx, properties);
        break;
      default:
        throw new errors.InvalidRequest('client metadata can only be registered or updated at the registration endpoint');
    }
    markRegistrationPolicyApplied(ctx);
  };
}

const MANAGEMENT_PATH = /^\/register\/([^/]+)$/;

/**
 * Client secrets are stored hashed (oauth/clients/secrets.ts), which oidc-provider's RFC 7592 handlers
 * don't know about: an update that carries the client's plaintext secret is compared against the
 * stored value by plain equality, and reads return the stored value. So an update's secret is
 * swapped for the stored hash once it verifies, and no response ever carries a hash (nor the
 * registration ceiling, which is the server's to enforce).
 */
export function registrationSecretHandling(bodyLimit: string, findClient: (id: string) => Promise<Record<string, unknown> | undefined>) {
  const rules: BodyRules<JsonProblem> = {
    types: ['application/json'],
    limit: parseSize(bodyLimit),
    // Only application/json bodies are read: what is left to refuse is size and syntax.
    refuse: (problem) =>
      problem.kind === 'too-large'
        ? new OAuthError(413, 'request_too_large', `The request body exceeds ${bodyLimit}.`)
        : new OAuthError(400, 'invalid_request', 'the request body is not valid JSON'),
  };
  return async function registrationSecrets(ctx: Context, next: Next): Promise<void> {
    const match = MANAGEMENT_PATH.exec(ctx.path);
    if (match && ctx.method === 'PUT' && ctx.is('application/json')) {
      // Refusals go to the generic boundary, which answers OAuth JSON here.
      const body = await readJson(ctx, rules);
      if (body && typeof body === 'object' && typeof (body as { client_secret?: unknown }).client_secret === 'string') {
        const stored = await findClient(decodeURIComponent(match[1]!));
        const given = (body as { client_secret: string }).client_secret;
        if (stored && isHashedClientSecret(stored.client_secret) && verifyClientSecret(stored.client_secret, given)) {
          (body as { client_secret: string }).client_secret = stored.client_secret;
        }
      }
      (ctx.request as unknown as { body: unknown }).body = body;
    }
    await next();
    const route = (ctx as Context & { oidc?: { route?: string } }).oidc?.route;
    const out = ctx.body as Record<string, unknown> | undefined;
    if ((route === 'client' || route === 'client_update') && out && isHashedClientSecret(out.client_secret)) {
      delete out.client_secret;
      delete out.client_secret_expires_at;
    }
    if ((route === 'registration' || route === 'client' || route === 'client_update') && out && typeof out === 'object') {
      // The ceiling is ours to enforce, not metadata the registrant manages.
      delete out[CEILING_PROPERTY];
      // RFC 7591 names a client's scopes `scope`: registrants that know only the standard read them there.
      if (Array.isArray(out.smart_scopes)) out.scope = out.smart_scopes.join(' ');
    }
  };
}
