import type { Context, Next } from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { applyKindDefaults } from './client-kinds.js';
import { generateClientSecret, isHashedClientSecret, verifyClientSecret } from './secrets.js';
import { parseSize } from '../http/body-limit.js';

type NeedsSecret = { needsSecret(metadata: Record<string, unknown>): boolean };

/**
 * Registration policy run by oidc-provider for every RFC 7591/7592 write made with our initial
 * access tokens: fill OAuth metadata from the SMART client kind, then settle the secret, which
 * oidc-provider decided on *before* policies ran (a backend service must not get one).
 */
export function smartRegistrationPolicy(ctx: KoaContextWithOIDC, properties: Record<string, unknown>): void {
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

const MANAGEMENT_PATH = /^\/register\/([^/]+)$/;

/**
 * Client secrets are stored hashed (clients/secrets.ts), which oidc-provider's RFC 7592 handlers
 * don't know about: an update that carries the client's plaintext secret is compared against the
 * stored value by plain equality, and reads return the stored value. So an update's secret is
 * swapped for the stored hash once it verifies, and no response ever carries a hash.
 */
export function registrationSecretHandling(bodyLimit: string, findClient: (id: string) => Promise<Record<string, unknown> | undefined>) {
  const max = parseSize(bodyLimit);
  return async function registrationSecrets(ctx: Context, next: Next): Promise<void> {
    const match = MANAGEMENT_PATH.exec(ctx.path);
    if (match && ctx.method === 'PUT' && ctx.is('application/json')) {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of ctx.req) {
        size += (chunk as Buffer).length;
        if (size > max) ctx.throw(413, `The request body exceeds ${bodyLimit}.`);
        chunks.push(chunk as Buffer);
      }
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        ctx.status = 400;
        ctx.body = { error: 'invalid_request', error_description: 'the request body is not valid JSON' };
        return;
      }
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
  };
}
