/**
 * The public paths of the OAuth endpoints oidc-provider serves. SMART clients and resource servers
 * hard-code these, so they are kept stable; every module that links to an endpoint takes it from here.
 */
export const ROUTES = {
  authorization: '/authorize',
  token: '/token',
  introspection: '/introspect',
  revocation: '/revoke',
  userinfo: '/userinfo',
  jwks: '/.well-known/jwks.json',
  registration: '/register',
  end_session: '/logout',
} as const;
