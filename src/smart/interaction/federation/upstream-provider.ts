import * as client from 'openid-client';
import type { FederationProvider } from '../../../platform/config/schema.js';
import { clientAuthentication, signingKeyOf, type SigningKey } from './client-auth.js';

/**
 * One configured upstream OpenID Connect provider, as this server's relying party: its settings,
 * the redirect URI administrators register upstream, and its discovered metadata (openid-client
 * keeps the upstream's JWKS cached itself).
 *
 * Discovery is made on first use and kept; after a failure the next sign-in discovers again (an
 * IdP that was down, or moved its endpoints, is picked up without a restart), and a document older
 * than a day is read again, the old one still serving if the upstream cannot be reached then.
 */

/** The upstream cannot be used: unreachable (network, timeout, a 5xx) or its metadata unusable. */
export class UpstreamUnreachable extends Error {
  override name = 'UpstreamUnreachable';
}

const REDISCOVER_AFTER_MS = 24 * 3600 * 1000;
const HTTP_TIMEOUT_SECONDS = 10;

/** Whether an openid-client failure means the upstream could not be reached, rather than answered wrongly. */
export function isUnreachable(err: unknown): boolean {
  if (err instanceof UpstreamUnreachable) return true;
  // fetch() rejects with a TypeError for refused connections, DNS and TLS failures.
  if (err instanceof TypeError) return true;
  const code = (err as { code?: unknown }).code;
  if (code === 'OAUTH_TIMEOUT' || code === 'OAUTH_ABORT') return true;
  if (code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' || code === 'OAUTH_RESPONSE_IS_NOT_JSON') {
    const status = ((err as { cause?: { status?: unknown } }).cause as { status?: unknown } | undefined)?.status;
    return typeof status !== 'number' || status >= 500;
  }
  return false;
}

export class UpstreamProvider {
  readonly id: string;
  readonly displayName: string;
  /** `{issuer}/federation/<id>/callback`: fixed, what administrators register at the upstream. */
  readonly redirectUri: string;
  private discovered?: { at: number; config: Promise<client.Configuration> };

  constructor(
    readonly settings: FederationProvider,
    ourIssuer: string,
    private readonly key: SigningKey | undefined,
  ) {
    this.id = settings.id;
    this.displayName = settings.displayName;
    this.redirectUri = `${ourIssuer.replace(/\/+$/, '')}/federation/${settings.id}/callback`;
  }

  /** The discovered configuration; UpstreamUnreachable when discovery fails (and no earlier document serves). */
  async configuration(): Promise<client.Configuration> {
    const now = Date.now();
    const current = this.discovered;
    if (current && now - current.at < REDISCOVER_AFTER_MS) return current.config;
    const fresh = { at: now, config: this.discover() };
    this.discovered = fresh;
    try {
      return await fresh.config;
    } catch (err) {
      if (this.discovered === fresh) this.discovered = undefined;
      if (current) {
        const old = await current.config.catch(() => undefined);
        if (old) {
          this.discovered = { at: now, config: Promise.resolve(old) };
          return old;
        }
      }
      throw err;
    }
  }

  /** Drops the discovered metadata: the next sign-in reads it again (after an upstream failure). */
  forget(): void {
    this.discovered = undefined;
  }

  private async discover(): Promise<client.Configuration> {
    const server = new URL(this.settings.issuer);
    try {
      return await client.discovery(
        server,
        this.settings.clientId,
        { redirect_uris: [this.redirectUri], response_types: ['code'] },
        await clientAuthentication(this.settings, this.key),
        {
          timeout: HTTP_TIMEOUT_SECONDS,
          // http: issuers are refused in production by the configuration schema.
          ...(server.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {}),
        },
      );
    } catch (err) {
      // Unreachable, or a document that does not describe the configured issuer: either way no
      // sign-in can start, and only an operator can tell which (the log says).
      throw new UpstreamUnreachable(`discovery of ${this.settings.issuer} failed: ${(err as Error).message}`);
    }
  }
}

/** The configured providers by id; their key files are read now (a bad file is a ConfigError at start). */
export function upstreamProviders(providers: readonly FederationProvider[], ourIssuer: string): ReadonlyMap<string, UpstreamProvider> {
  return new Map(providers.map((p, i) => [p.id, new UpstreamProvider(p, ourIssuer, signingKeyOf(p, i))]));
}
