import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import type { IssueType, OperationOutcome } from '../domain/fhir/types.js';
import { apiTokens, issuedFor, type ApiTokens, type FoundToken } from '../oauth/introspection/token-lookup.js';
import { parseScope, type Permission } from '../domain/scopes/scopes.js';
import { isRedisOutage } from '../platform/redis/outage.js';
import { STORE_RETRY_AFTER_SECONDS } from '../platform/http/errors.js';

/**
 * What this server's FHIR APIs (/fhir/Consent, /fhir/AuditEvent) share: FHIR errors as
 * OperationOutcomes, bearer-token callers, and the permissions their scopes give on one resource.
 */

export const FHIR_JSON = 'application/fhir+json';
export const JSON_PATCH = 'application/json-patch+json';

/** An error a FHIR API answers with an OperationOutcome and this HTTP status. */
export class FhirError extends Error {
  override name = 'FhirError';

  constructor(
    readonly status: number,
    readonly code: IssueType,
    readonly diagnostics: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(diagnostics);
  }
}

export function operationOutcome(code: IssueType, diagnostics: string): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics }] };
}

export function sendFhir(ctx: Context, status: number, body?: unknown): void {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  if (body === undefined) return;
  ctx.body = JSON.stringify(body);
  ctx.type = `${FHIR_JSON}; charset=utf-8`;
}

/** Reads a JSON request body of one of `mediaTypes`, at most `limit` bytes. */
export async function readJsonBody(ctx: Context, mediaTypes: string[], limit: number): Promise<unknown> {
  if (!ctx.request.length && !ctx.get('Transfer-Encoding')) throw new FhirError(400, 'required', 'the request needs a JSON body');
  if (!ctx.is(...mediaTypes)) throw new FhirError(415, 'not-supported', `Content-Type must be ${mediaTypes.join(' or ')}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new FhirError(413, 'too-costly', `the request body exceeds ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new FhirError(400, 'structure', 'the request body is not valid JSON');
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Turns whatever a FHIR route throws into an OperationOutcome: FhirErrors as they are, the API's
 * own errors through `translate`, Koa's client errors as `invalid`, anything else as a logged 500
 * that reveals nothing.
 */
export function fhirErrorBoundary(logger: Logger, api: string, translate: (err: unknown) => FhirError | undefined = () => undefined) {
  return async function renderOperationOutcome(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (err) {
      let problem = err instanceof FhirError ? err : translate(err);
      if (!problem) {
        const status = (err as { status?: number }).status ?? 500;
        if ((err as { expose?: boolean }).expose && status < 500) problem = new FhirError(status, 'invalid', (err as Error).message);
        else if (isRedisOutage(err)) {
          logger.warn({ err: { message: (err as Error).message }, requestId: ctx.state.requestId }, `${api} request: store unavailable`);
          problem = new FhirError(503, 'transient', 'The service cannot reach its data store. Try again shortly.', { 'Retry-After': String(STORE_RETRY_AFTER_SECONDS) });
        } else {
          logger.error({ err, requestId: ctx.state.requestId }, `${api} request failed`);
          problem = new FhirError(500, 'exception', 'an unexpected error occurred');
        }
      }
      for (const [name, value] of Object.entries(problem.headers)) ctx.set(name, value);
      sendFhir(ctx, problem.status, operationOutcome(problem.code, problem.diagnostics));
    }
  };
}

export interface TokenFinder {
  find(value: string): Promise<FoundToken | undefined>;
}

/** The Consent, Provenance and AuditEvent APIs take tokens for `<issuer>/fhir` (own-api.ts). */
export type { ApiTokens };
export { apiTokens };

const BEARER = /^Bearer\s+([A-Za-z0-9\-._~+/]+=*)\s*$/i;

/** The active access token for this API of an `Authorization: Bearer` header, or a 401 naming `realm`. */
export async function bearerAccessToken(authorization: string, tokens: ApiTokens, realm: string): Promise<FoundToken> {
  const m = BEARER.exec(authorization);
  if (!m) throw new FhirError(401, 'login', 'an access token is required (Authorization: Bearer …)', { 'WWW-Authenticate': realm });
  const invalid = (description: string) => new FhirError(401, 'login', description, { 'WWW-Authenticate': `${realm}, error="invalid_token", error_description="${description}"` });
  const token = await tokens.find(m[1]!);
  if (!token || token.kind === 'RefreshToken') throw invalid('the access token is not valid (unknown, expired or revoked)');
  if (!issuedFor(token, tokens.audience)) throw invalid(`the access token was not issued for this API (request one with resource=${tokens.audience})`);
  if (!(await tokens.sessionOpen(token))) throw invalid('the sign-in session this access token belonged to has ended');
  return token;
}

export function insufficientScope(realm: string, description: string): FhirError {
  return new FhirError(403, 'forbidden', description, { 'WWW-Authenticate': `${realm}, error="insufficient_scope"` });
}

/**
 * The permission letters scopes of one context give on one resource type. Only scopes naming the
 * type count (a `*` data scope must not open an administrative API), and never scopes with a
 * query constraint, which these APIs do not evaluate.
 */
export function resourcePermissions(scopes: readonly string[], context: 'patient' | 'system', resourceType: string): Set<Permission> {
  const permissions = new Set<Permission>();
  for (const s of scopes) {
    const p = parseScope(s);
    if (p.kind !== 'resource' || p.context !== context || p.resourceType !== resourceType || p.query) continue;
    for (const letter of p.permissions) permissions.add(letter);
  }
  return permissions;
}
