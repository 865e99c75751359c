import { z } from 'zod';
import { hcsPolicySchema } from '../../domain/hcs/policy.js';

/**
 * The whole runtime configuration. Every setting has a default that is right for a developer's
 * laptop; production mode adds the rules in `productionRules` on top.
 */

const parsed = (v: string) => URL.parse(v);

/** A PostgreSQL connection URL (postgres:// or postgresql://). */
const postgresUrl = z.string().refine((v) => {
  try {
    return ['postgres:', 'postgresql:'].includes(new URL(v).protocol);
  } catch {
    return false;
  }
}, 'must be a postgres:// or postgresql:// URL');

const absoluteHttpUrl = z
  .string()
  .trim()
  .refine((v) => parsed(v) !== null, { message: 'must be an absolute URL', abort: true })
  .refine((v) => ['http:', 'https:'].includes(parsed(v)!.protocol), { message: 'must use http: or https:', abort: true })
  .refine((v) => !parsed(v)!.search && !parsed(v)!.hash, 'must not have a query or fragment');

/** Trailing slashes are dropped so `aud` comparison and URL joining have one spelling. */
const baseUrl = absoluteHttpUrl.transform((v) => v.replace(/\/+$/, ''));

const hostPort = z.object({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
});

export const redisSchema = z
  .object({
    url: z
      .string()
      .refine((v) => /^rediss?:\/\//.test(v), 'must start with redis:// or rediss://')
      .optional(),
    sentinels: z.array(hostPort).min(1).optional(),
    sentinelName: z.string().min(1).optional(),
    clusterNodes: z.array(hostPort).min(1).optional(),
    username: z.string().optional(),
    password: z.string().optional(),
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9_.-]*:?$/, 'letters, digits, _ . - and an optional trailing colon')
      .default('authz:'),
    /**
     * Replicas that must acknowledge a request's writes (Redis WAIT) before it is answered; 0 = off.
     * Unacknowledged → 503, nothing handed out (redis/write-acks.ts).
     */
    minReplicas: z.number().int().min(0).max(16).optional(),
    /** How long WAIT waits for those acknowledgements; below the 2 s command timeout. */
    waitTimeoutMs: z.number().int().min(10).max(1_500).optional(),
  })
  .refine((r) => [r.url, r.sentinels, r.clusterNodes].filter(Boolean).length <= 1, {
    message: 'set only one of url, sentinels or clusterNodes',
  })
  // WAIT counts the replicas of the one node it is sent to; a Cluster request writes to several.
  .refine((r) => !(r.clusterNodes && r.minReplicas), { message: 'minReplicas is not supported with clusterNodes', path: ['minReplicas'] });

export const fhirServerSchema = z.object({
  /** FHIR base URL; tokens for this server carry it as `aud`. */
  base: baseUrl,
  /** Optional tenant name, echoed as `tenant` in token responses. */
  tenant: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ and -, at most 64')
    .optional(),
  name: z.string().max(200).optional(),
  /** Access-token format resource servers of this base expect. */
  accessTokenFormat: z.enum(['opaque', 'jwt']).default('opaque'),
});

const seconds = z.number().int().positive();

export const ttlSchema = z.object({
  accessToken: seconds.default(3600),
  backendAccessToken: seconds.max(3600).default(300),
  authorizationCode: seconds.max(600).default(60),
  refreshToken: seconds.default(90 * 24 * 3600),
  idToken: seconds.default(3600),
  session: seconds.default(8 * 3600),
  interaction: seconds.default(3600),
  grant: seconds.default(365 * 24 * 3600),
  /** How long an EHR launch value stays usable before the app's authorization starts (SMART EHR-02). */
  launch: seconds.max(3600).default(300),
});

const signingAlg = z.enum(['RS384', 'ES384', 'RS256', 'ES256', 'PS256']);

export const configSchema = z
  .object({
    mode: z.enum(['development', 'production']).default('development'),
    // Served at the root of its origin: oidc-provider derives every route from the issuer path,
    // so a path prefix belongs to the reverse proxy, not here.
    issuer: baseUrl
      .refine((v) => new URL(v).pathname === '/', 'must not have a path (serve at the root of its origin)')
      .default('http://localhost:3000'),
    host: z.string().min(1).default('0.0.0.0'),
    port: z.number().int().min(0).max(65535).default(3000),
    /** Trust X-Forwarded-* from a TLS-terminating proxy. */
    proxy: z.boolean().default(false),
    tls: z
      .object({
        certFile: z.string().min(1),
        keyFile: z.string().min(1),
      })
      .optional(),
    redis: redisSchema.default({ prefix: 'authz:' }),
    /** Start a private redis-server in dev mode when none answers (never in production). */
    devRedis: z.boolean().default(true),
    dataDir: z.string().min(1).default('var'),
    fhirServers: z.array(fhirServerSchema).min(1).default([{ base: 'http://localhost:8080/fhir', accessTokenFormat: 'opaque' }]),
    ttl: ttlSchema.default(ttlSchema.parse({})),
    /** Keys that sign cookies; the first signs, all verify (rotate by prepending). */
    cookieKeys: z.array(z.string().min(32, 'each cookie key needs at least 32 characters')).min(1).optional(),
    /** Encrypts private signing keys at rest in Redis when set. */
    keyEncryptionSecret: z.string().min(32, 'needs at least 32 characters').optional(),
    clientsFile: z.string().min(1).optional(),
    clientAuthSigningAlgs: z
      .array(signingAlg)
      .min(1)
      .default(['RS384', 'ES384'])
      .refine((a) => a.includes('RS384') || a.includes('ES384'), 'must include RS384 or ES384 (SMART)'),
    jwksFetch: z
      .object({
        /** Let client jwks_uri hosts resolve to private/loopback addresses; default: dev yes, production no. */
        allowPrivateNetworks: z.boolean().optional(),
        timeoutMs: z.number().int().min(100).max(30_000).default(2500),
      })
      .default({ timeoutMs: 2500 }),
    /** argon2id parameters for user passwords; defaults are OWASP's minimum (19 MiB, t=2, p=1). */
    passwords: z
      .object({
        memoryKiB: z.number().int().min(19_456, 'must be at least 19456 (OWASP minimum)').default(19_456),
        timeCost: z.number().int().min(2, 'must be at least 2 (OWASP minimum)').default(2),
        parallelism: z.number().int().min(1).max(16).default(1),
      })
      .default({ memoryKiB: 19_456, timeCost: 2, parallelism: 1 }),
    login: z
      .object({
        /** Consecutive failures that lock an account until an administrator or the timer clears it. */
        maxFailuresPerAccount: z.number().int().min(1).default(5),
        lockoutSeconds: z.number().int().min(1).default(900),
        /** Attempts per IP address per minute, whatever the account. */
        maxAttemptsPerIpPerMinute: z.number().int().min(1).default(30),
      })
      .default({ maxFailuresPerAccount: 5, lockoutSeconds: 900, maxAttemptsPerIpPerMinute: 30 }),
    scim: z
      .object({
        /** Most users a non-indexed filter may examine before it is refused as too broad. */
        maxFilterScan: z.number().int().min(100).default(10_000),
        maxPageSize: z.number().int().min(1).max(1000).default(200),
      })
      .default({ maxFilterScan: 10_000, maxPageSize: 200 }),
    registration: z
      .object({
        /** RFC 7591 dynamic registration; always requires an initial access token. */
        enabled: z.boolean().default(true),
      })
      .default({ enabled: true }),
    http: z
      .object({
        bodyLimit: z.string().regex(/^\d+(kb|mb)$/i, 'like 100kb or 1mb').default('100kb'),
        /** CSP frame-ancestors sources; `'none'` forbids framing entirely. */
        frameAncestors: z.array(z.string().min(1)).min(1).default(["'none'"]),
        shutdownGraceMs: z.number().int().min(0).default(10_000),
        /**
         * After SIGTERM, how long /readyz answers 503 and responses close their connections while
         * the listener still accepts (load balancers notice); unset: 5000 in production, 1000 in development.
         */
        shutdownDrainMs: z.number().int().min(0).optional(),
        /** Budget of one Redis command while serving; past it the store counts as unavailable (503). */
        redisCommandTimeoutMs: z.number().int().min(50).max(10_000).default(500),
      })
      .default({ bodyLimit: '100kb', frameAncestors: ["'none'"], shutdownGraceMs: 10_000, redisCommandTimeoutMs: 500 }),
    /**
     * Who may read `/metrics`. With a token, scrapers send it as a bearer token; without one,
     * development serves it openly and production not at all unless `open` says the network
     * already keeps it private (metrics name routes, clients' error rates and token volumes).
     */
    metrics: z
      .object({
        token: z.string().min(32, 'must be at least 32 characters').optional(),
        open: z.boolean().optional(),
      })
      .default({}),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .default({ level: 'info' }),
    consents: z
      .object({
        /** A FHIR base URL every Consent is also written to (PUT Consent/<id>) through a durable outbox. */
        fhirServer: baseUrl.optional(),
        /** Bearer token for that FHIR server. */
        fhirServerToken: z.string().min(1).optional(),
        /** When a covering Consent spares the consent page (smart/interaction/consent/consent-gate.ts). */
        remember: z.enum(['silent', 'always', 'never']).default('silent'),
      })
      .prefault({}),
    /** HL7 HCS policy: purposes of use, obligations, ceilings, break the glass (hcs/policy.ts). */
    hcs: hcsPolicySchema.prefault({}),
    audit: z
      .object({
        /** A signed checkpoint is written after this many appended events... */
        checkpointEvery: z.number().int().min(1).default(10_000),
        /** ...or after this many seconds with new events, whichever comes first. */
        checkpointIntervalSeconds: z.number().int().min(1).default(300),
        /**
         * `audit verify` fails when the newest signed checkpoint of the main chain is older than the
         * interval plus this grace: a running server signs one every interval, even when idle.
         */
        checkpointGraceSeconds: z.number().int().min(0).default(300),
        /**
         * Directory of the append-only checkpoint anchor, outside Redis (audit/anchor.ts). Required in
         * production; development defaults to <dataDir>/audit-anchor.
         */
        anchorDir: z.string().min(1).optional(),
        /** Every checkpoint is also POSTed here as JSON (a SIEM's HTTP collector). */
        anchorUrl: absoluteHttpUrl.optional(),
        /** How long one POST to anchorUrl may take before it counts as failed. */
        anchorTimeoutMs: z.number().int().min(100).max(60_000).default(5000),
        /** Events older than this are removed by `audit purge` (except disclosures, below). */
        retentionDays: z.number().int().min(1).default(365),
        /**
         * Events that record a disclosure of a patient's data are kept this long: HIPAA
         * §164.528 gives patients an accounting of disclosures for the six years before the
         * request, so the default is six years (2192 days: six years including leap days).
         */
        disclosureRetentionDays: z.number().int().min(1).default(2192),
        /** The patient's disclosure report names staff members; when false, only role and organisation. */
        disclosureShowStaffNames: z.boolean().default(false),
        /**
         * Check every event against the R4 AuditEvent structure before it is appended. Default:
         * on in development (where the test suite exercises every builder), off in production,
         * where it would cost the introspection hot path ~15 µs per request to re-check shapes the
         * builders' types and tests already guarantee.
         */
        validateEvents: z.boolean().optional(),
        /** Record an AuditEvent for every token introspection (BALP); off trades the trail for throughput. */
        introspection: z.boolean().default(true),
        /** Most events one append script writes (group commit); at most 2000, as Lua unpacks a batch onto its stack (limit 8000). */
        maxBatch: z.number().int().min(1).max(2000).default(500),
        /**
         * A search with several parameters starts from its smallest one; past this many events (in
         * its date range) it is refused as too costly instead of tying Redis up (audit/search.ts).
         */
        searchMaxCandidates: z.number().int().min(100).default(100_000),
        /**
         * Hash chains the trail is spread over (audit/chain.ts). One is right for a single Redis or
         * Sentinel; in a Cluster, more (e.g. twice the number of masters) spread the audit writes
         * over the masters, and appends move to another chain while one master is down.
         */
        chains: z.number().int().min(1).max(64).default(1),
        /**
         * Where the trail lives for good (audit/pg/): `postgres` (Redis is only its intake: a shipper
         * moves entries to PostgreSQL and trims them from Redis) or `redis` (the trail stays in Redis,
         * bounded by retentionDays). Unset: postgres when databaseUrl is set; in development also
         * when a PostgreSQL answers at the development default, else redis with a warning.
         */
        store: z.enum(['postgres', 'redis']).optional(),
        /** PostgreSQL of the trail, as the application role (INSERT and SELECT only). */
        databaseUrl: postgresUrl.optional(),
        /** The same database as the schema's owner: migrations and retention (CLI). Default: databaseUrl. */
        databaseOwnerUrl: postgresUrl.optional(),
        /**
         * Most events the Redis intake holds that PostgreSQL has not confirmed (per chain). Past it,
         * audited requests are refused with 503 rather than let Redis grow until it fails.
         */
        intakeMaxEvents: z.number().int().min(1000).default(1_000_000),
      })
      .default({
        checkpointEvery: 10_000,
        checkpointIntervalSeconds: 300,
        checkpointGraceSeconds: 300,
        anchorTimeoutMs: 5000,
        retentionDays: 365,
        disclosureRetentionDays: 2192,
        disclosureShowStaffNames: false,
        introspection: true,
        maxBatch: 500,
        searchMaxCandidates: 100_000,
        chains: 1,
        intakeMaxEvents: 1_000_000,
      }),
    /**
     * Launch context of EHR launches whose EHR does not name it in POST /api/launch (SMART
     * context-style and context-banner); the EHR's own values win. Not used for standalone launches.
     */
    smart: z
      .object({
        /** smart_style_url; default: this server's own style document, {issuer}/smart-style.json. */
        styleUrl: absoluteHttpUrl.optional(),
        needPatientBanner: z.boolean().default(true),
      })
      .default({ needPatientBanner: true }),
    /** Seed demo clients (and later users) in development mode. */
    demoData: z.boolean().default(true),
  })
  .superRefine((c, ctx) => {
    const bases = new Set<string>();
    const tenants = new Set<string>();
    c.fhirServers.forEach((s, i) => {
      if (bases.has(s.base)) ctx.addIssue({ code: 'custom', path: ['fhirServers', i, 'base'], message: 'is listed twice' });
      bases.add(s.base);
      if (s.tenant) {
        if (tenants.has(s.tenant)) ctx.addIssue({ code: 'custom', path: ['fhirServers', i, 'tenant'], message: 'is listed twice' });
        tenants.add(s.tenant);
      }
    });
    if (c.audit.disclosureRetentionDays < c.audit.retentionDays) {
      ctx.addIssue({ code: 'custom', path: ['audit', 'disclosureRetentionDays'], message: 'must be at least audit.retentionDays (disclosures are kept at least as long as other events)' });
    }
    if (c.mode !== 'production') return;
    const issuer = new URL(c.issuer);
    if (issuer.protocol === 'http:' && !c.proxy) {
      ctx.addIssue({ code: 'custom', path: ['issuer'], message: 'must be https in production unless behind a declared proxy (proxy=true)' });
    }
    if (issuer.protocol === 'https:' && !c.proxy && !c.tls) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'an https issuer needs a TLS certificate and key, or proxy=true behind a TLS-terminating proxy' });
    }
    if (c.consents.fhirServerToken && c.consents.fhirServer?.startsWith('http:')) {
      ctx.addIssue({ code: 'custom', path: ['consents', 'fhirServer'], message: 'must be https in production when a token is sent to it' });
    }
    if (c.audit.store !== 'redis' && !c.audit.databaseUrl) {
      // A trail kept in Redis grows with every request and lives in RAM: production names its home (docs/audit-postgres.md).
      ctx.addIssue({ code: 'custom', path: ['audit', 'databaseUrl'], message: 'is required in production (the audit trail is kept in PostgreSQL), unless the trail is kept in Redis on purpose: AUTHZ_AUDIT_STORE=redis' });
    }
    if (!c.audit.anchorDir) {
      // Checkpoints kept only in Redis do not survive an attacker with Redis access (docs/security/audit-anchoring.md).
      ctx.addIssue({ code: 'custom', path: ['audit', 'anchorDir'], message: 'is required in production: signed audit checkpoints must also be written outside Redis' });
    }
    if (c.smart.styleUrl?.startsWith('http:')) {
      ctx.addIssue({ code: 'custom', path: ['smart', 'styleUrl'], message: 'must be https in production' });
    }
    if (!c.cookieKeys) {
      ctx.addIssue({ code: 'custom', path: ['cookieKeys'], message: 'is required in production' });
    }
    // Signing keys live in Redis: unencrypted, a copy of a Redis backup is enough to mint tokens.
    if (!c.keyEncryptionSecret) {
      ctx.addIssue({ code: 'custom', path: ['keyEncryptionSecret'], message: 'is required in production (it encrypts the signing keys kept in Redis)' });
    }
  });

export type Config = z.infer<typeof configSchema>;
export type RedisSettings = z.infer<typeof redisSchema>;
export type FhirServer = z.infer<typeof fhirServerSchema>;
export type TtlSettings = z.infer<typeof ttlSchema>;

/** Production never seeds demo data or starts a private Redis, whatever the file says. */
export function effectiveConfig(c: Config): Config {
  if (c.mode === 'production') return { ...c, demoData: false, devRedis: false };
  return c;
}
