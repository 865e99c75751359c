import Router from '@koa/router';
import { ROUTES } from '../paths.js';
import { introspectionEndpoint, type IntrospectionDeps } from './introspect.js';
import { revocationEndpoint, type RevocationDeps } from './revoke.js';

/**
 * RFC 7662 introspection and RFC 7009 revocation, served by us rather than by oidc-provider:
 * introspection is the product's hottest path (one pipelined Redis round trip, no password
 * hashing), and oidc-provider cannot introspect or revoke its own JWT access tokens. Each endpoint
 * is a sequence of named steps (introspect.ts, revoke.ts).
 */
export function introspectionRoutes(deps: IntrospectionDeps & RevocationDeps): Router {
  const router = new Router();
  router.post(ROUTES.introspection, ...introspectionEndpoint(deps));
  router.post(ROUTES.revocation, ...revocationEndpoint(deps));
  return router;
}
