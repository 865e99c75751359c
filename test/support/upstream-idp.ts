/*
 * An upstream OpenID Connect identity provider for federated sign-in tests: a second oidc-provider
 * on a real port (http://127.0.0.1:<port>), with one registered client (this server) and people
 * whose ID-token claims the test sets (oid, preferred_username, email, email_verified, amr, acr …).
 *
 * Its sign-in needs no page when the test says who signs in next (`signInAs`), so supertest-driven
 * tests follow plain redirects; otherwise it shows a tiny form (a subject and a button) that a real
 * browser can fill. Its cookies have their own names: a browser keeps cookies per host, not per
 * port, so they must not collide with the server's own on 127.0.0.1.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider, { type Configuration, type InteractionResults, type KoaContextWithOIDC } from 'oidc-provider';

export interface UpstreamUser {
  sub: string;
  /** The user's claims in ID tokens besides `sub`: oid, preferred_username, email, email_verified, name, roles … */
  claims?: Record<string, unknown>;
  amr?: string[];
  acr?: string;
  /** `auth_time` to report (epoch seconds); default: now. */
  authTime?: number;
}

export interface UpstreamIdpOptions {
  /** This server's callback URL(s), e.g. `${issuer}/federation/<id>/callback`. */
  redirectUris: string[];
  clientId?: string;
  /** client_secret_basic with this secret (default), unless `clientJwks` is given. */
  clientSecret?: string;
  /** private_key_jwt: the client's public keys. */
  clientJwks?: { keys: JWK[] };
  /** Listen on this port (default: any free one). */
  port?: number;
}

export interface UpstreamIdp {
  issuer: string;
  /**
   * A second issuer URL on this IdP whose discovery document claims that URL as its issuer while
   * every token still says `issuer`: a mis-advertising (or impersonated) provider. It also says it
   * sends no `iss` in authorization responses, so a test can reach the ID token's `iss` check.
   */
  misadvertisedIssuer: string;
  clientId: string;
  clientSecret?: string;
  /** The people who can sign in, by subject. */
  users: Map<string, UpstreamUser>;
  addUser(user: UpstreamUser): void;
  /** The next sign-ins complete as this subject without a page (undefined: show the form). */
  signInAs(sub: string | undefined): void;
  /** The next sign-in ends with this OAuth error (e.g. access_denied) instead. */
  refuseNext(error: string): void;
  close(): Promise<void>;
}

const CLAIMS = [
  'sub',
  'acr',
  'amr',
  'auth_time',
  'oid',
  'preferred_username',
  'email',
  'email_verified',
  'name',
  'given_name',
  'family_name',
];

function readBody(req: IncomingMessage): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      data += chunk;
      if (data.length > 16_384) req.destroy(new Error('too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(data)));
    req.on('error', reject);
  });
}

/** oidc-provider's storage, in memory (the upstream lives as long as its test file). */
class MemoryAdapter {
  private static readonly store = new Map<string, { payload: Record<string, unknown>; expires: number }>();
  constructor(private readonly model: string) {}
  private key(id: string) {
    return `${this.model}:${id}`;
  }
  async upsert(id: string, payload: Record<string, unknown>, expiresIn: number) {
    MemoryAdapter.store.set(this.key(id), { payload, expires: Date.now() + expiresIn * 1000 });
  }
  async find(id: string) {
    const entry = MemoryAdapter.store.get(this.key(id));
    return entry && entry.expires > Date.now() ? entry.payload : undefined;
  }
  async findByUid(uid: string) {
    for (const [key, entry] of MemoryAdapter.store)
      if (key.startsWith(`${this.model}:`) && entry.payload.uid === uid && entry.expires > Date.now()) return entry.payload;
    return undefined;
  }
  async findByUserCode() {
    return undefined;
  }
  async consume(id: string) {
    const entry = MemoryAdapter.store.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id: string) {
    MemoryAdapter.store.delete(this.key(id));
  }
  async revokeByGrantId(grantId: string) {
    for (const [key, entry] of MemoryAdapter.store) if (entry.payload.grantId === grantId) MemoryAdapter.store.delete(key);
  }
}

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export async function startUpstreamIdp(opts: UpstreamIdpOptions): Promise<UpstreamIdp> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const misadvertisedIssuer = `${issuer}/mis`;
  const clientId = opts.clientId ?? 'smart-authz';
  const clientSecret = opts.clientJwks ? undefined : (opts.clientSecret ?? 'upstream-client-secret-123');
  const users = new Map<string, UpstreamUser>();
  let next: { sub?: string; error?: string } = {};

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), kid: 'upstream-1', alg: 'RS256', use: 'sig' };

  const configuration: Configuration = {
    clients: [
      {
        client_id: clientId,
        ...(clientSecret ? { client_secret: clientSecret } : { jwks: opts.clientJwks }),
        token_endpoint_auth_method: clientSecret ? 'client_secret_basic' : 'private_key_jwt',
        redirect_uris: opts.redirectUris,
        response_types: ['code'],
        grant_types: ['authorization_code'],
      },
    ],
    jwks: { keys: [signingKey as JWK] } as Configuration['jwks'],
    adapter: MemoryAdapter as unknown as Configuration['adapter'],
    ttl: { Interaction: 600, Session: 600, Grant: 600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
    pkce: { required: () => true },
    claims: { openid: CLAIMS, email: ['email', 'email_verified'], profile: ['name', 'given_name', 'family_name', 'preferred_username'] },
    cookies: {
      keys: ['upstream-idp-test-cookie-key'],
      names: { session: 'upstream_session', interaction: 'upstream_interaction', resume: 'upstream_resume' },
    },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx, sub) => {
      const user = users.get(sub);
      if (!user) return undefined;
      return { accountId: sub, claims: () => ({ ...user.claims, sub }) };
    },
    // A first-party sign-in: every requested scope and claim is granted without a consent page.
    loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
      const { oidc } = ctx;
      const grant = new oidc.provider.Grant({ clientId: oidc.client!.clientId, accountId: oidc.session!.accountId! });
      grant.addOIDCScope(String(oidc.params!.scope ?? 'openid'));
      grant.addOIDCClaims(CLAIMS);
      await grant.save();
      return grant;
    },
  };
  const provider = new Provider(issuer, configuration);

  const loginResult = (sub: string): InteractionResults => {
    const user = users.get(sub);
    return {
      login: {
        accountId: sub,
        ...(user?.amr ? { amr: user.amr } : {}),
        ...(user?.acr ? { acr: user.acr } : {}),
        ts: user?.authTime ?? Math.floor(Date.now() / 1000),
        remember: false,
      },
    };
  };

  provider.use(async (ctx, nextMiddleware) => {
    if (ctx.path === '/mis/.well-known/openid-configuration') {
      const real = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
      ctx.body = { ...real, issuer: misadvertisedIssuer, authorization_response_iss_parameter_supported: false };
      return;
    }
    const match = /^\/interaction\/([^/]+)(\/login)?$/.exec(ctx.path);
    if (!match) return nextMiddleware();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    let result: InteractionResults | undefined;
    if (ctx.method === 'POST' && match[2]) {
      const sub = (await readBody(ctx.req)).get('sub') ?? '';
      result = users.has(sub) ? loginResult(sub) : { error: 'access_denied', error_description: 'unknown test user' };
    } else if (next.error) {
      result = { error: next.error, error_description: 'refused by the test' };
      next = { ...next, error: undefined };
    } else if (next.sub && details.prompt.name === 'login') {
      result = loginResult(next.sub);
    }
    if (!result) {
      ctx.type = 'html';
      ctx.body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Upstream sign-in</title></head><body>
<h1>Upstream test identity provider</h1>
<form method="post" action="/interaction/${escape(details.uid)}/login">
<label for="sub">Subject</label> <input id="sub" name="sub" value="${escape([...users.keys()][0] ?? '')}">
<button type="submit">Sign in</button>
</form></body></html>`;
      return;
    }
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(returnTo);
  });

  server.on('request', provider.callback());

  return {
    issuer,
    misadvertisedIssuer,
    clientId,
    ...(clientSecret ? { clientSecret } : {}),
    users,
    addUser: (user) => users.set(user.sub, user),
    signInAs: (sub) => {
      next = { ...next, sub };
    },
    refuseNext: (error) => {
      next = { ...next, error };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
