import { createLocalJWKSet, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { Adapter, AdapterPayload, JWKS } from 'oidc-provider';

/** Where a JWT access token's revocable state lives: a marker per `jti`, indexed by grant. */
export const JWT_MARKER_MODEL = 'JwtAccessToken';

export type TokenKind = 'AccessToken' | 'ClientCredentials' | 'RefreshToken';

export interface FoundToken {
  kind: TokenKind;
  format: 'opaque' | 'jwt';
  /** The token's id: the opaque value, or the JWT's jti. */
  id: string;
  clientId: string;
  accountId?: string;
  grantId?: string;
  scope?: string;
  aud?: string | string[];
  iat?: number;
  exp: number;
  /** Launch context and other claims oidc-provider keeps in `extra`. */
  extra: Record<string, unknown>;
  sessionUid?: string;
  expiresWithSession?: boolean;
}

const ACCESS_KINDS: readonly TokenKind[] = ['AccessToken', 'ClientCredentials'];
const OPAQUE = /^[A-Za-z0-9_-]{20,256}$/;
const JWT_SHAPE = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

function fromPayload(kind: TokenKind, format: 'opaque' | 'jwt', id: string, p: AdapterPayload): FoundToken {
  return {
    kind,
    format,
    id,
    clientId: String(p.clientId),
    accountId: p.accountId as string | undefined,
    grantId: p.grantId as string | undefined,
    scope: p.scope as string | undefined,
    aud: (p.aud ?? (kind === 'RefreshToken' ? p.resource : undefined)) as string | string[] | undefined,
    iat: p.iat as number | undefined,
    exp: Number(p.exp),
    extra: (p.extra as Record<string, unknown> | undefined) ?? {},
    sessionUid: p.sessionUid as string | undefined,
    expiresWithSession: p.expiresWithSession as boolean | undefined,
  };
}

/**
 * Finds a token by its value and decides whether it is still good. Opaque tokens: the three
 * token models are read in one pipelined round trip (the hint only breaks ties). This server's
 * JWT access tokens: the signature is checked against our own keys in-process, then one read of
 * the revocation marker. Expired, consumed (rotated refresh tokens) or unknown → undefined.
 */
/** A token issued for a browser session (online access, no offline_access) ends with that session. */
export async function sessionStillOpen(adapters: (model: string) => Adapter, token: FoundToken): Promise<boolean> {
  if (!token.expiresWithSession || !token.sessionUid) return true;
  return Boolean(await adapters('Session').findByUid(token.sessionUid));
}

/**
 * How one of this server's own APIs tells a token meant for it: found and active, issued for its
 * audience, and its sign-in session still open when it was bound to one (as /userinfo and
 * introspection decide). Used by the Consent/AuditEvent APIs, SCIM and bearer introspection.
 */
export interface ApiTokens {
  readonly audience: string;
  find(value: string): Promise<FoundToken | undefined>;
  sessionOpen(token: FoundToken): Promise<boolean>;
}

export function apiTokens(
  lookup: { find(value: string): Promise<FoundToken | undefined> },
  adapters: (model: string) => Adapter,
  audience: string,
): ApiTokens {
  return {
    audience: normaliseAudience(audience),
    find: (value) => lookup.find(value),
    sessionOpen: (token) => sessionStillOpen(adapters, token),
  };
}

/** Whether `token` was issued for `audience`. Absence of an audience is no audience: fail closed. */
export function issuedFor(token: FoundToken, audience: string): boolean {
  const auds = Array.isArray(token.aud) ? token.aud : token.aud === undefined ? [] : [token.aud];
  return auds.some((a) => normaliseAudience(a) === normaliseAudience(audience));
}

function normaliseAudience(url: string): string {
  return url.trim().replace(/\/+$/, '');
}

export class TokenLookup {
  private jwks: JWTVerifyGetKey;

  constructor(
    private readonly adapters: (model: string) => Adapter,
    jwks: JWKS,
    private readonly issuer: string,
  ) {
    this.jwks = TokenLookup.publicKeySet(jwks);
  }

  static publicKeySet(jwks: JWKS): JWTVerifyGetKey {
    const keys = jwks.keys.map((k) => {
      const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = k as unknown as Record<string, unknown>;
      return pub;
    });
    return createLocalJWKSet({ keys } as JSONWebKeySet);
  }

  async find(value: string, hint?: string | null): Promise<FoundToken | undefined> {
    if (JWT_SHAPE.test(value)) return this.findJwt(value);
    if (!OPAQUE.test(value)) return undefined;
    // Resource servers introspect access tokens; refresh tokens come from their own clients. So
    // the two access-token models are read together (one round trip) and refresh tokens only on
    // a miss, or first when the caller hints so. Every token is still found whatever the hint.
    const hit =
      hint === 'refresh_token'
        ? ((await this.read(['RefreshToken'], value)) ?? (await this.read(ACCESS_KINDS, value)))
        : ((await this.read(ACCESS_KINDS, value)) ?? (await this.read(['RefreshToken'], value)));
    if (!hit) return undefined;
    const [kind, payload] = hit;
    if (payload.consumed) return undefined;
    const token = fromPayload(kind, 'opaque', value, payload);
    return token.exp > Math.floor(Date.now() / 1000) ? token : undefined;
  }

  private async read(kinds: readonly TokenKind[], value: string): Promise<[TokenKind, AdapterPayload] | undefined> {
    const found = await Promise.all(kinds.map((kind) => this.adapters(kind).find(value)));
    const index = found.findIndex(Boolean);
    return index < 0 ? undefined : [kinds[index]!, found[index] as AdapterPayload];
  }

  private async findJwt(value: string): Promise<FoundToken | undefined> {
    let claims: Record<string, unknown>;
    try {
      ({ payload: claims } = await jwtVerify(value, this.jwks, { issuer: this.issuer, typ: 'at+jwt' }));
    } catch {
      return undefined;
    }
    if (typeof claims.jti !== 'string') return undefined;
    const marker = await this.adapters(JWT_MARKER_MODEL).find(claims.jti);
    if (!marker) return undefined;
    const { iss: _iss, sub, aud, exp, iat, jti, client_id, scope, ...extra } = claims;
    return {
      kind: marker.kind === 'ClientCredentials' ? 'ClientCredentials' : 'AccessToken',
      format: 'jwt',
      id: jti,
      clientId: String(client_id),
      accountId: marker.kind === 'ClientCredentials' ? undefined : (sub as string | undefined),
      grantId: marker.grantId as string | undefined,
      scope: scope as string | undefined,
      aud: aud as string | string[] | undefined,
      iat: iat as number | undefined,
      exp: exp as number,
      extra,
    };
  }
}
