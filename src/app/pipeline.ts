import type { Adapter } from 'oidc-provider';
import type Provider from 'oidc-provider';
import type Router from '@koa/router';
import type { Services } from './services.js';
import { ROUTES } from '../oauth/paths.js';
import { requestContext } from '../platform/http/request-context.js';
import { securityHeaders } from '../platform/http/security-headers.js';
import { errorBoundary, requireRedis } from '../platform/http/errors.js';
import { durableWrites } from '../platform/http/durable-writes.js';
import { bodyLimit } from '../platform/http/body-limit.js';
import { requireValidOrigin } from '../platform/http/request-origin.js';
import { metricsAccessFor, opsRoutes } from '../platform/http/health.js';
import { writeTrackerFor } from '../platform/redis/write-acks.js';
import { gatedRoutes } from '../platform/http/router-gate.js';
import { ClientCache } from '../oauth/clients/client-cache.js';
import { PublicClientOrigins, browserPreflight } from '../oauth/provider/browser-cors.js';
import { ownApiAudience } from '../oauth/provider/own-api.js';
import { adminApiAudience } from '../oauth/provider/admin-apis.js';
import { clientRegistryFor } from '../oauth/clients/wiring.js';
import { registrationSecretHandling } from '../oauth/clients/registration-http.js';
import { ensureManageClient } from '../oauth/clients/manage-client.js';
import { exposeClientAuthProblems } from '../oauth/backend/client-auth-errors.js';
import { introspectionRoutes } from '../oauth/introspection/routes.js';
import { TokenLookup } from '../oauth/introspection/token-lookup.js';
import { CallerAuthenticator } from '../oauth/introspection/caller-auth.js';
import { tokenResponseContext } from '../oauth/tokens/token-context.js';
import { userinfoRoutes } from '../oauth/userinfo/routes.js';
import { providerAudit } from '../oauth/provider/provider-audit.js';
import { smartConfigurationRoutes } from '../smart/discovery/smart-configuration.js';
import { launchRoutes } from '../smart/launch/launch-routes.js';
import { authorizationRequestRewrites } from '../smart/launch/authorize-request.js';
import { grantUsageTracking } from '../smart/launch/grant-usage.js';
import { InteractionCsrf } from '../smart/interaction/pages/csrf.js';
import { IpRateLimiter } from '../smart/interaction/login/ip-limiter.js';
import { PasswordLogin } from '../smart/interaction/login/password-login.js';
import { interactionRoutes } from '../smart/interaction/routes.js';
import { SignInCompletion } from '../smart/interaction/second-factor/sign-in-completion.js';
import { federationFor } from '../smart/interaction/federation/wiring.js';
import { FhirDirectory } from '../smart/interaction/fhir-search/fhir-directory.js';
import { ServiceCredential, ensurePatientSearchClient } from '../smart/interaction/fhir-search/service-credential.js';
import { apiTokens } from '../oauth/introspection/token-lookup.js';
import { scimRoutes } from '../apis/scim/routes.js';
import { consentRoutes } from '../apis/consent/routes.js';
import { provenanceRoutes } from '../apis/consent/provenance-routes.js';
import { auditRoutes } from '../apis/audit/routes.js';
import { manageRoutes } from '../apis/manage/routes.js';

/**
 * The HTTP pipeline, as one declared list. oidc-provider is itself the Koa application; each step
 * is inserted ahead of its own router (provider.use), in this order, so a request meets them top
 * to bottom and reaches oidc-provider's endpoints (/authorize, /token, /revoke, /register, /jwks,
 * /logout, /interaction) last. docs/architecture.md quotes this list (test/app/pipeline.test.ts
 * keeps it current).
 */
export interface Step {
  /** Stable name, quoted by the docs. */
  name: string;
  /** Why it is here and why at this position. */
  purpose: string;
  middleware: Parameters<Provider['use']>[0];
  /** The routes the step answers, when it is a router (read by the docs test). */
  router?: Router;
}

export function httpPipeline(services: Services, provider: Provider): Step[] {
  const { deps, audit, auditStore, adapters, users, launches, grantContexts, consents, recorder, usage, storeHealth } = services;
  const { config, logger, metrics, redis, keyspace, jwks, cookieKeys } = deps;
  const redisReady = () => storeHealth.available();
  // The pickers search the FHIR server with a token this server mints for its own internal client,
  // and /manage signs in through its own client; main.ts registers both at start-up, or they are
  // registered here on first use on a fresh store.
  const registry = clientRegistryFor(provider, redis, keyspace);
  const clientAdapter = (provider.Client as unknown as { adapter: Adapter }).adapter;
  const lookup = new TokenLookup(adapters, jwks, config.issuer);
  const callerAuth = new CallerAuthenticator({
    clientAdapter,
    records: new ClientCache(services.invalidations),
    redis,
    keyspace,
    fetcher: services.jwksFetcher,
    issuer: config.issuer,
    algorithms: config.clientAuthSigningAlgs,
  });
  // SCIM, and the Consent, Provenance and AuditEvent APIs, take only tokens for their own audience.
  const ownApiTokens = apiTokens(lookup, adapters, ownApiAudience(config.issuer));
  const fhirUserBase = config.fhirServers[0]!.base;
  const csrf = new InteractionCsrf(cookieKeys);
  // One budget per network for every sign-in secret: passwords and second factors alike.
  const ipLimiter = new IpRateLimiter(redis, keyspace, config.login.maxAttemptsPerIpPerMinute);
  const signIns = new SignInCompletion({
    provider,
    users,
    factors: services.factors,
    lockout: services.lockout,
    progress: services.signInProgress,
    policy: config.mfa,
    freshSeconds: config.mfa.breakTheGlassFreshSeconds,
  });
  // Reads the providers' key files now: a bad one stops the start-up (ConfigError).
  const federation = federationFor({ config, redis, keyspace, users, logger, afterFirstFactor: signIns.afterFirstFactor });
  const credential = new ServiceCredential({
    provider,
    ensureClient: () => ensurePatientSearchClient(registry, config.clientAuthSigningAlgs),
    ttlSeconds: config.ttl.backendAccessToken,
  });
  // A router step: its middleware (skipped at once by paths it has no route for), and the router
  // itself so its routes can be listed.
  const routes = (router: Router) => ({ middleware: gatedRoutes(router) as unknown as Step['middleware'], router });

  return [
    {
      name: 'request-context',
      purpose: 'request id, access log and request metrics for everything below',
      middleware: requestContext(logger, metrics),
    },
    {
      name: 'client-auth-problems',
      purpose:
        "turns oidc-provider's generic invalid_client into the reason an operator can act on (logged, and told to the client where safe)",
      middleware: exposeClientAuthProblems(provider, config.clientAuthSigningAlgs),
    },
    {
      name: 'security-headers',
      purpose: 'CSP, frame-ancestors, no-sniff and cache headers on every response, errors included',
      middleware: securityHeaders({ frameAncestors: config.http.frameAncestors }),
    },
    {
      name: 'error-boundary',
      purpose: 'an error below becomes its wire format (OAuth JSON, page) without a stack trace; a store outage becomes 503 + Retry-After',
      middleware: errorBoundary(logger, redisReady),
    },
    {
      name: 'request-origin',
      purpose: 'refuses cross-site form posts and requests whose Host/Origin do not match the issuer',
      middleware: requireValidOrigin(),
    },
    {
      name: 'ops',
      purpose: '/healthz, /readyz, /metrics: answered before anything that needs Redis',
      ...routes(opsRoutes(storeHealth, metrics, deps.isShuttingDown ?? (() => false), metricsAccessFor(config.metrics, config.mode))),
    },
    {
      name: 'durable-writes',
      purpose: 'before anything that writes: 503 for what a failing-over Redis may lose (AUTHZ_REDIS_MIN_REPLICAS)',
      middleware: durableWrites(writeTrackerFor(redis, config.redis), logger),
    },
    {
      name: 'require-redis',
      purpose: 'fails fast with 503 while the circuit breaker says Redis is away',
      middleware: requireRedis(redisReady, /^\/(healthz|readyz|metrics|static\/)/),
    },
    {
      name: 'browser-preflight',
      purpose: 'CORS for browser apps on /token and /revoke, from their registered origins only',
      middleware: browserPreflight([ROUTES.token, ROUTES.revocation], new PublicClientOrigins(() => registry.list())),
    },
    {
      name: 'body-limit',
      purpose: 'refuses oversized request bodies before anything reads them',
      middleware: bodyLimit(config.http.bodyLimit),
    },
    {
      name: 'provider-audit',
      purpose: 'awaits the AuditEvent of token, authorization, logout and registration requests before they are answered',
      middleware: providerAudit({ audit, issuer: config.issuer, grantContext: (grantId) => grantContexts.get(grantId) }),
    },
    {
      name: 'authorize-rewrites',
      purpose: 'SMART authorization requests: launch, aud and scope rules before oidc-provider sees them',
      middleware: authorizationRequestRewrites(ROUTES.authorization),
    },
    {
      name: 'token-response-context',
      purpose: 'adds the SMART launch context (patient, encounter, fhirContext …) to token responses',
      middleware: tokenResponseContext({ tokenPath: ROUTES.token, grantContexts, fhirServers: config.fhirServers }),
    },
    {
      name: 'grant-usage',
      purpose: "records when a grant's tokens were last used, for /manage",
      middleware: grantUsageTracking({ tokenPath: ROUTES.token, usage, logger }),
    },
    { name: 'discovery', purpose: '/.well-known/smart-configuration', ...routes(smartConfigurationRoutes(config)) },
    {
      name: 'introspection',
      purpose: '/introspect (RFC 7662) with SMART context, audited',
      ...routes(introspectionRoutes({ config, provider, adapters, jwks, lookup, auth: callerAuth, audit, grantContexts })),
    },
    { name: 'userinfo', purpose: '/userinfo', ...routes(userinfoRoutes({ lookup, adapters, findAccount: services.accounts })) },
    {
      name: 'launch-api',
      purpose: 'POST /launch: EHRs create launch contexts',
      ...routes(launchRoutes({ config, auth: callerAuth, launches, users, audit })),
    },
    {
      name: 'scim',
      purpose: '/scim/v2: users and groups (RFC 7644)',
      ...routes(
        scimRoutes({
          store: users,
          groups: services.groups,
          factors: services.factors,
          lookup: apiTokens(lookup, adapters, adminApiAudience(config.issuer, 'scim')),
          config,
          logger,
          audit,
        }),
      ),
    },
    { name: 'consent-api', purpose: '/fhir/Consent', ...routes(consentRoutes({ consents, lookup: ownApiTokens, config, logger })) },
    {
      name: 'provenance-api',
      purpose: '/fhir/Provenance',
      ...routes(provenanceRoutes({ consents, lookup: ownApiTokens, config, logger })),
    },
    {
      name: 'audit-api',
      purpose: '/fhir/AuditEvent and the disclosure report',
      ...routes(auditRoutes({ config, store: auditStore, trail: audit, lookup: ownApiTokens, logger })),
    },
    {
      name: 'manage',
      purpose: '/manage: people see and withdraw what they granted, manage their own second factors; administrators see the trail',
      ...routes(
        manageRoutes({
          config,
          provider,
          consents,
          users,
          factors: services.factors,
          usage,
          jwks,
          cookieKeys,
          ensureClient: () => ensureManageClient(registry, config.issuer),
          logger,
          audit: { store: auditStore, trail: audit },
        }),
      ),
    },
    {
      name: 'registration-secrets',
      purpose: 'RFC 7591/7592: stores client secrets hashed, answers them once',
      middleware: registrationSecretHandling(
        config.http.bodyLimit,
        async (id) => (await clientAdapter.find(id)) as Record<string, unknown> | undefined,
      ),
    },
    {
      name: 'interaction',
      purpose:
        'sign-in and the SMART prompts (/interaction/…): login (password, or an upstream identity provider: /federation/…), patient and encounter pickers, consent',
      ...routes(
        interactionRoutes({
          provider,
          csrf,
          audit,
          issuer: config.issuer,
          login: new PasswordLogin({ users, lockout: services.lockout, ipLimiter, passwords: config.passwords, logger }),
          afterFirstFactor: signIns.afterFirstFactor,
          signInOptions: {
            passwordSignIn: config.federation.passwordSignIn,
            providers: config.federation.providers.map((p) => ({ id: p.id, displayName: p.displayName })),
          },
          federation,
          secondFactor: {
            provider,
            csrf,
            users,
            factors: services.factors,
            progress: services.signInProgress,
            completion: signIns,
            ipLimiter,
            audit,
            issuer: config.issuer,
            freshSeconds: config.mfa.breakTheGlassFreshSeconds,
          },
          pages: {
            provider,
            csrf,
            users,
            recorder,
            directory: new FhirDirectory({ credential, logger }),
            fhirServers: config.fhirServers,
            fhirUserBase,
            staffRoles: config.hcs.staffRoles,
            consents,
            consentLifetimes: { refreshToken: config.ttl.refreshToken, session: config.ttl.session },
            rememberConsent: config.consents.remember,
            issuer: config.issuer,
            breakTheGlassFreshSeconds: config.mfa.breakTheGlassFreshSeconds,
            logger,
          },
        }),
      ),
    },
  ];
}
