import type { ClientRegistry } from './registry.js';

/**
 * The management page signs its users in with OpenID Connect against this very server, as an
 * internal public client: the same sign-in page, session and account checks as every app, and no
 * second way to authenticate. It asks for `openid` only, names no FHIR server (so it never gets a
 * token a FHIR server would accept) and its one redirect URI is this server's own callback.
 */

export const MANAGE_CLIENT_ID = 'smart-authz-manage';

export const MANAGE_PATHS = {
  page: '/manage',
  callback: '/manage/callback',
  signedOut: '/manage/signed-out',
} as const;

export function isManageClient(clientId: unknown): boolean {
  return clientId === MANAGE_CLIENT_ID;
}

export function manageRedirectUri(issuer: string): string {
  return `${issuer}${MANAGE_PATHS.callback}`;
}

export function manageClientMetadata(issuer: string): Record<string, unknown> {
  return {
    client_id: MANAGE_CLIENT_ID,
    client_name: 'Connected apps (internal to the authorization server)',
    smart_client_kind: 'public_app',
    grant_types: ['authorization_code'],
    redirect_uris: [manageRedirectUri(issuer)],
    post_logout_redirect_uris: [`${issuer}${MANAGE_PATHS.signedOut}`],
    smart_scopes: ['openid'],
  };
}

/** Registers the internal client, or puts it back as defined here if someone changed it. */
export async function ensureManageClient(registry: Pick<ClientRegistry, 'upsert'>, issuer: string): Promise<void> {
  await registry.upsert(manageClientMetadata(issuer), { generateSecret: false });
}
