import type { Context, Next } from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';

/**
 * CORS for the client endpoints oidc-provider serves (token, revocation). SMART App Launch
 * "Considerations for CORS": browser apps reach the token endpoint from their registered origins.
 * Here a browser app is a public client (auth method none; a browser cannot keep a secret) and its
 * registered origins are those of its redirect URIs.
 *
 * A preflight carries no client_id, so it cannot be answered per client: it is allowed when the
 * origin belongs to some public client, and refused (no Access-Control-Allow-Origin) otherwise.
 * The request itself is then checked against its own client (oidc-provider `clientBasedCORS`); a
 * request from an origin that client may not use is refused with invalid_request and no
 * Access-Control-Allow-Origin before anything is done, so a code is not spent and a refresh token
 * not rotated by a request whose answer the browser would hide from the app anyway.
 */

/** The origin of a URI when it has one (http/https); custom schemes of native apps have none. */
function originOf(uri: string): string | undefined {
  const url = URL.parse(uri);
  return url && (url.protocol === 'https:' || url.protocol === 'http:') ? url.origin : undefined;
}

/** oidc-provider `clientBasedCORS`: may `client` be called from `origin`? */
export function browserClientOrigin(
  ctx: KoaContextWithOIDC,
  origin: string,
  client: { clientAuthMethod?: string; redirectUris?: readonly string[] | undefined },
): boolean {
  // Sandboxed frames and file: pages send "null", which any page can produce.
  if (origin === 'null') return false;
  if (ctx.oidc.route !== 'userinfo' && client.clientAuthMethod !== 'none') return false;
  return (client.redirectUris ?? []).some((uri) => originOf(uri) === origin);
}

/**
 * The origins of every public client's redirect URIs, read from the client registry and kept for
 * a short while: an origin found is answered from memory, an origin not found re-reads the
 * registry at most once per `missRefreshMs`, so a newly registered app is seen quickly and
 * preflights from unknown origins cost at most one registry read in that time.
 */
export class PublicClientOrigins {
  private origins = new Set<string>();
  private loadedAt = Number.NEGATIVE_INFINITY;
  private loading: Promise<void> | undefined;

  constructor(
    private readonly list: () => Promise<Array<Record<string, unknown>>>,
    private readonly opts: { missRefreshMs?: number; now?: () => number } = {},
  ) {}

  async has(origin: string): Promise<boolean> {
    if (origin === 'null') return false;
    if (this.origins.has(origin)) return true;
    const now = (this.opts.now ?? Date.now)();
    if (now - this.loadedAt >= (this.opts.missRefreshMs ?? 5000)) await this.reload(now);
    return this.origins.has(origin);
  }

  private reload(now: number): Promise<void> {
    this.loading ??= this.list()
      .then((clients) => {
        const origins = new Set<string>();
        for (const client of clients) {
          if (client.token_endpoint_auth_method !== 'none' || !Array.isArray(client.redirect_uris)) continue;
          for (const uri of client.redirect_uris) {
            const origin = typeof uri === 'string' ? originOf(uri) : undefined;
            if (origin) origins.add(origin);
          }
        }
        this.origins = origins;
        this.loadedAt = now;
      })
      .finally(() => {
        this.loading = undefined;
      });
    return this.loading;
  }
}

/**
 * Answers CORS preflights of `paths` from origins no public client has: 204 without any
 * Access-Control-* header, which the browser reads as "not allowed". Others go on to
 * oidc-provider, which allows them.
 */
export function browserPreflight(paths: readonly string[], origins: Pick<PublicClientOrigins, 'has'>) {
  const guarded = new Set(paths);
  // Not async: every request passes here and only preflights stop (an async wrapper is a promise per request).
  return function preflight(ctx: Context, next: Next): Promise<void> {
    const origin = ctx.get('Origin');
    if (ctx.method !== 'OPTIONS' || !guarded.has(ctx.path) || !origin || !ctx.get('Access-Control-Request-Method')) return next();
    return answerPreflight(ctx, next, origin);
  };
  async function answerPreflight(ctx: Context, next: Next, origin: string): Promise<void> {
    if (await origins.has(origin)) return next();
    ctx.vary('Origin');
    ctx.status = 204;
  }
}
