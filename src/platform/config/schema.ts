import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { hcsPolicySchema } from '../../domain/hcs/policy.js';

/**
 * The whole runtime configuration. Every setting has a default that is right for a developer's
 * laptop; production mode adds the rules at the end of `configSchema` on top.
 *
 * The `.describe()` texts and `.meta()` keys below are the configuration reference:
 * scripts/config-docs.ts renders them, with the variable names of `ENV_VARS` (load.ts), into
 * docs/configuration.md, and a test keeps that page current. Besides `description`:
 * `docType` names the type where the schema alone would only say "string", and `docDefault`
 * states a default the schema does not hold (one that depends on the mode, or is applied elsewhere).
 */

const parsed = (v: string) => URL.parse(v);

/** A PostgreSQL connection URL (postgres:// or postgresql://). */
const postgresUrl = z
  .string()
  .meta({ docType: '`postgres://` or `postgresql://` URL' })
  .refine((v) => {
    try {
      return ['postgres:', 'postgresql:'].includes(new URL(v).protocol);
    } catch {
      return false;
    }
  }, 'must be a postgres:// or postgresql:// URL');

const absoluteHttpUrl = z
  .string()
  .meta({ docType: 'http(s) URL' })
  .trim()
  .refine((v) => parsed(v) !== null, { message: 'must be an absolute URL', abort: true })
  .refine((v) => ['http:', 'https:'].includes(parsed(v)!.protocol), { message: 'must use http: or https:', abort: true })
  .refine((v) => !parsed(v)!.search && !parsed(v)!.hash, 'must not have a query or fragment');

/** Trailing slashes are dropped so `aud` comparison and URL joining have one spelling. */
const baseUrl = absoluteHttpUrl.transform((v) => v.replace(/\/+$/, ''));

/** Which ID-token (or userinfo) claim names which SCIM attribute, for linking a federated user. */
const claimLinkSchema = z.object({
  claim: z.string().min(1).describe('the upstream claim, e.g. `oid`, `preferred_username`, `email`'),
  attribute: z.enum(['externalId', 'userName', 'emails']).describe('the SCIM attribute it must equal'),
});

/** One upstream OpenID Connect provider (Entra ID, Okta, Ping, Keycloak, ADFS). */
export const federationProviderSchema = z
  .object({
    id: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'must be 1-32 lower-case letters, digits or dashes')
      .describe('short name, in the callback URL `{issuer}/federation/<id>/callback`'),
    displayName: z.string().min(1).max(80).describe('the button text: "Sign in with <displayName>"'),
    issuer: absoluteHttpUrl.describe('the upstream issuer; its discovery document is read from it'),
    clientId: z.string().min(1),
    clientSecret: z.string().min(1).optional().describe('client_secret_basic; or give a private key'),
    privateKeyFile: z.string().min(1).optional().describe('a PEM or JWK file: private_key_jwt client authentication'),
    scopes: z.array(z.string().min(1)).default(['openid', 'profile', 'email']),
    link: z.array(claimLinkSchema).min(1).describe('how an upstream user is found in the directory, tried in order'),
    jit: z
      .object({
        enabled: z.boolean().default(false),
        attributes: z
          .array(z.enum(['userName', 'externalId', 'displayName', 'name.givenName', 'name.familyName', 'emails']))
          .default(['userName', 'externalId', 'displayName', 'name.givenName', 'name.familyName', 'emails']),
      })
      .prefault({})
      .describe('just-in-time creation of unknown users (off by default; never roles or patient links)'),
    trustUpstreamMfa: z
      .boolean()
      .default(true)
      .describe('an upstream sign-in whose `amr` has `mfa` (or whose `acr` is listed below) counts as multi-factor here'),
    mfaAcrValues: z.array(z.string().min(1)).default([]).describe('upstream `acr` values that mean multi-factor'),
  })
  .refine((p) => Boolean(p.clientSecret) !== Boolean(p.privateKeyFile), 'needs exactly one of clientSecret and privateKeyFile');

const hostPort = z.object({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
});

export const redisSchema = z
  .object({
    url: z
      .string()
      .refine((v) => /^rediss?:\/\//.test(v), 'must start with redis:// or rediss://')
      .optional()
      .meta({
        description: 'single Redis (`rediss://` for TLS)',
        docType: '`redis://` or `rediss://` URL',
        docDefault: '`redis://127.0.0.1:6379`',
      }),
    sentinels: z.array(hostPort).min(1).optional().describe('the sentinels of a Sentinel group (use instead of the URL)'),
    sentinelName: z.string().min(1).optional().describe('the master name the sentinels watch'),
    clusterNodes: z.array(hostPort).min(1).optional().describe('seed nodes of a Redis Cluster (use instead of the URL)'),
    username: z.string().optional().describe('Redis ACL user name'),
    password: z.string().optional().describe('Redis ACL password'),
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9_.-]*:?$/, 'letters, digits, _ . - and an optional trailing colon')
      .default('authz:')
      .describe('key prefix, to share a Redis between deployments (letters, digits, `_ . -` and an optional trailing colon)'),
    // Unacknowledged writes → 503, nothing handed out (platform/redis/write-acks.ts).
    minReplicas: z.number().int().min(0).max(16).optional().meta({
      description:
        'single Redis or Sentinel (not a Cluster): a request that wrote waits (`WAIT`) until this many replicas have its writes, else answers 503 and hands nothing out ([operations](operations.md#redis-sentinel-and-failover))',
      docDefault: '`0` (off)',
    }),
    // Below the serving budget of one command (http.redisCommandTimeoutMs, 500 ms by default).
    waitTimeoutMs: z
      .number()
      .int()
      .min(10)
      .max(1_500)
      .optional()
      .meta({ description: 'how long that `WAIT` waits for the acknowledgements', docDefault: '`500`' }),
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
  accessToken: seconds.default(3600).describe('lifetime of user access tokens (seconds)'),
  backendAccessToken: seconds.max(3600).default(300).describe('lifetime of client-credentials access tokens (seconds)'),
  authorizationCode: seconds.max(600).default(60).describe('lifetime of authorization codes (seconds)'),
  refreshToken: seconds
    .default(90 * 24 * 3600)
    .describe('lifetime of refresh tokens (seconds); also how long a Consent given with `offline_access` lasts'),
  idToken: seconds.default(3600).describe('lifetime of id_tokens (seconds)'),
  session: seconds
    .default(8 * 3600)
    .describe('lifetime of a sign-in session (seconds); also how long a Consent given without `offline_access` lasts'),
  interaction: seconds.default(3600).describe('how long one authorization may spend on its pages: sign-in, pickers, consent (seconds)'),
  grant: seconds.default(365 * 24 * 3600).describe('lifetime of a grant and the launch context kept with it (seconds)'),
  // SMART EHR-02.
  launch: seconds
    .max(3600)
    .default(300)
    .describe("how long an EHR `launch` value stays usable before the app's authorization starts (seconds)"),
});

/** More would only add memory: each worker holds its own provider, Redis connections and caches. */
export const MAX_WORKERS = 64;

const signingAlg = z.enum(['RS384', 'ES384', 'RS256', 'ES256', 'PS256']);

export const configSchema = z
  .object({
    mode: z.enum(['development', 'production']).default('development').meta({
      description: 'production refuses unsafe settings and never seeds demo data',
      docDefault: '`development` (`production` when `NODE_ENV=production`)',
    }),
    // Served at the root of its origin: oidc-provider derives every route from the issuer path,
    // so a path prefix belongs to the reverse proxy, not here.
    issuer: baseUrl
      .refine((v) => new URL(v).pathname === '/', 'must not have a path (serve at the root of its origin)')
      .default('http://localhost:3000')
      .describe('public URL; no path (put a prefix on the proxy). Production: https, or http only behind `AUTHZ_PROXY`'),
    host: z.string().min(1).default('0.0.0.0').describe('listening address'),
    port: z.number().int().min(0).max(65535).default(3000).describe('listening port'),
    // Resolved by workerCount() (below): the mode decides the default.
    workers: z
      .number()
      .int()
      .min(1, 'must be at least 1')
      .max(MAX_WORKERS, `must be at most ${MAX_WORKERS}`)
      .optional()
      .meta({
        description:
          'server processes sharing the port (node:cluster), so every core serves; SIGHUP restarts them one at a time ([operations](operations.md#workers))',
        docDefault: `production: the cores available (\`os.availableParallelism()\`, at most ${MAX_WORKERS}); development \`1\``,
      }),
    proxy: z
      .boolean()
      .default(false)
      .describe('trust `X-Forwarded-*` from a TLS-terminating proxy (forward `Host` and `X-Forwarded-Proto`)'),
    tls: z
      .object({
        certFile: z
          .string()
          .min(1)
          .meta({ description: 'certificate file: serve HTTPS directly (TLS 1.2 minimum), with the key below', docType: 'file path' }),
        keyFile: z.string().min(1).meta({ description: 'private key file of that certificate', docType: 'file path' }),
      })
      .optional(),
    redis: redisSchema.default({ prefix: 'authz:' }),
    devRedis: z.boolean().default(true).describe('development: start a private `redis-server` when none answers (never in production)'),
    dataDir: z
      .string()
      .min(1)
      .default('var')
      .meta({ description: 'where development keeps its private Redis and PostgreSQL data and the audit anchor', docType: 'directory' }),
    fhirServers: z
      .array(fhirServerSchema)
      .min(1)
      .default([{ base: 'http://localhost:8080/fhir', accessTokenFormat: 'opaque' }])
      .meta({
        description:
          'the FHIR servers tokens are for; each base is a valid token audience, a tenant is echoed as `tenant` in token responses. In the JSON file each entry may also set `name` and `accessTokenFormat: "jwt"` (RFC 9068 access tokens)',
        docDefault: '`http://localhost:8080/fhir`',
      }),
    ttl: ttlSchema.default(ttlSchema.parse({})),
    cookieKeys: z.array(z.string().min(32, 'each cookie key needs at least 32 characters')).min(1).optional().meta({
      description:
        'keys that sign cookies, 32+ characters each; the first signs, all verify (rotate by prepending). Required in production',
      docDefault: 'development: generated once and kept in Redis',
    }),
    // Unencrypted, a copy of a Redis backup would be enough to mint tokens.
    keyEncryptionSecret: z
      .string()
      .min(32, 'needs at least 32 characters')
      .optional()
      .describe('encrypts private signing keys at rest in Redis (AES-256-GCM, key from HKDF-SHA256). Required in production'),
    // Rotation steps wait at least this long so that every instance has the new key set.
    keyReloadIntervalMs: z
      .number()
      .int()
      .min(100)
      .max(300_000)
      .default(30_000)
      .describe('how often every server process checks Redis for rotated signing keys (ms); a rotation step waits at least this long'),
    clientsFile: z.string().min(1).optional().meta({
      description:
        'JSON file of clients upserted at every start, all or nothing (see `config/clients.example.json` and [clients](clients.md))',
      docType: 'file path',
    }),
    clientAuthSigningAlgs: z
      .array(signingAlg)
      .min(1)
      .default(['RS384', 'ES384'])
      .refine((a) => a.includes('RS384') || a.includes('ES384'), 'must include RS384 or ES384 (SMART)')
      .describe('algorithms client assertions (`private_key_jwt`) may use; must include RS384 or ES384 (SMART)'),
    jwksFetch: z
      .object({
        allowPrivateNetworks: z.boolean().optional().meta({
          description: 'let client `jwks_uri` hosts be private, loopback or link-local addresses',
          docDefault: 'development `true`, production `false`',
        }),
        timeoutMs: z.number().int().min(100).max(30_000).default(2500).describe("how long fetching a client's `jwks_uri` may take (ms)"),
      })
      .default({ timeoutMs: 2500 }),
    /** argon2id parameters for user passwords; defaults are OWASP's minimum (19 MiB, t=2, p=1). */
    passwords: z
      .object({
        memoryKiB: z
          .number()
          .int()
          .min(19_456, 'must be at least 19456 (OWASP minimum)')
          .default(19_456)
          .describe('argon2id memory cost of user passwords (KiB; OWASP minimum enforced); a raised cost re-hashes at the next sign-in'),
        timeCost: z
          .number()
          .int()
          .min(2, 'must be at least 2 (OWASP minimum)')
          .default(2)
          .describe('argon2id iterations (OWASP minimum enforced)'),
        parallelism: z.number().int().min(1).max(16).default(1).describe('argon2id parallelism'),
      })
      .default({ memoryKiB: 19_456, timeCost: 2, parallelism: 1 }),
    login: z
      .object({
        maxFailuresPerAccount: z
          .number()
          .int()
          .min(1)
          .default(5)
          .describe(
            'consecutive sign-in failures that lock an account until an administrator or the timer clears it ([lock-out](security/lockout.md))',
          ),
        lockoutSeconds: z.number().int().min(1).default(900).describe('how long a lock-out lasts (seconds)'),
        maxAttemptsPerIpPerMinute: z
          .number()
          .int()
          .min(1)
          .default(30)
          .describe('sign-in attempts per IP address per minute, whatever the account; then 429 with back-off doubling up to an hour'),
      })
      .default({ maxFailuresPerAccount: 5, lockoutSeconds: 900, maxAttemptsPerIpPerMinute: 30 }),
    // Second factors: smart/interaction/second-factor/ and records/directory/factors/ ([MFA](mfa.md)).
    mfa: z
      .object({
        requireEveryone: z.boolean().default(false).describe('every user needs a second factor to sign in'),
        requireRoles: z
          .array(z.string().min(1))
          .default([])
          .describe("users holding any of these HCS role codes (their own or a group's) need a second factor"),
        requireGroups: z
          .array(z.string().min(1))
          .default([])
          .describe('members of these groups (SCIM Group id or displayName) need a second factor'),
        requireFhirUserTypes: z
          .array(z.enum(['Practitioner', 'PractitionerRole', 'Patient', 'RelatedPerson', 'Person']))
          .default([])
          .describe('users whose fhirUser is of one of these FHIR types need a second factor (e.g. `Practitioner`)'),
        breakTheGlassFreshSeconds: z
          .number()
          .int()
          .min(30)
          .max(3600)
          .default(300)
          .describe('breaking the glass needs a second factor verified within this many seconds; older, it is asked for again'),
        recoveryCodes: z.number().int().min(4).max(20).default(10).describe('one-time recovery codes made at a time'),
        totpIssuer: z.string().min(1).max(64).optional().meta({
          description: 'the name authenticator apps show for this server',
          docDefault: "the issuer's host name",
        }),
      })
      .prefault({}),
    // Upstream identity providers: smart/interaction/federation/ ([federation](federation.md)).
    federation: z
      .object({
        providers: z.array(federationProviderSchema).default([]).describe('OpenID Connect providers people may sign in with'),
        passwordSignIn: z
          .boolean()
          .default(true)
          .describe('offer the password form beside the providers; `false` leaves only the providers (needs at least one)'),
      })
      .prefault({}),
    scim: z
      .object({
        maxFilterScan: z
          .number()
          .int()
          .min(100)
          .default(10_000)
          .describe('most users a SCIM filter that is not an index lookup may examine before it is refused (`400 tooMany`)'),
        maxPageSize: z
          .number()
          .int()
          .min(1)
          .max(1000)
          .default(200)
          .describe('most resources one SCIM page holds (`count` is capped at it)'),
      })
      .default({ maxFilterScan: 10_000, maxPageSize: 200 }),
    registration: z
      .object({
        enabled: z.boolean().default(true).describe('RFC 7591/7592 dynamic registration (always behind initial access tokens)'),
      })
      .default({ enabled: true }),
    http: z
      .object({
        bodyLimit: z
          .string()
          .regex(/^\d+(kb|mb)$/i, 'like 100kb or 1mb')
          .default('100kb')
          .meta({ description: 'request body limit', docType: 'size, like `100kb` or `1mb`' }),
        frameAncestors: z
          .array(z.string().min(1))
          .min(1)
          .default(["'none'"])
          .describe("CSP `frame-ancestors` sources; `'none'` forbids framing entirely"),
        shutdownGraceMs: z
          .number()
          .int()
          .min(0)
          .default(10_000)
          .describe('on SIGTERM, how long in-flight requests may take to finish (ms)'),
        // Load balancers notice the 503 and stop sending before the listener closes.
        shutdownDrainMs: z.number().int().min(0).optional().meta({
          description:
            'after SIGTERM, how long `/readyz` answers 503 and responses close their connections before the listener closes (ms)',
          docDefault: '`5000` production, `1000` development',
        }),
        redisCommandTimeoutMs: z
          .number()
          .int()
          .min(50)
          .max(10_000)
          .default(500)
          .describe('budget of one Redis command while serving (ms); past it requests get 503 until a PING succeeds'),
      })
      .default({ bodyLimit: '100kb', frameAncestors: ["'none'"], shutdownGraceMs: 10_000, redisCommandTimeoutMs: 500 }),
    /**
     * Who may read `/metrics`. With a token, scrapers send it as a bearer token; without one,
     * development serves it openly and production not at all unless `open` says the network
     * already keeps it private (metrics name routes, clients' error rates and token volumes).
     */
    metrics: z
      .object({
        token: z
          .string()
          .min(32, 'must be at least 32 characters')
          .optional()
          .describe('bearer token (32+ characters) a scraper must send to read `/metrics`'),
        open: z.boolean().optional().meta({
          description: 'without a token: serve `/metrics` to anyone (only on a private network); otherwise it answers 404',
          docDefault: 'development `true`, production `false`',
        }),
      })
      .default({}),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('pino log level') })
      .default({ level: 'info' }),
    consents: z
      .object({
        fhirServer: baseUrl
          .optional()
          .describe(
            'also write every Consent to this FHIR base (`PUT Consent/<id>`) through a durable outbox ([consent](consent.md#write-through-to-a-fhir-server)); https in production when a token is set',
          ),
        fhirServerToken: z.string().min(1).optional().describe('bearer token sent to that FHIR server'),
        // Applied in smart/interaction/consent/consent-gate.ts.
        remember: z
          .enum(['silent', 'always', 'never'])
          .default('silent')
          .describe(
            'when a remembered consent skips the consent page: `silent` only for EHR launches and `prompt=none` (a standalone launch always shows it, so a person can narrow what they gave before), `always`, or `never` ([consent](consent.md#remembered-consent))',
          ),
      })
      .prefault({}),
    // The policy's own schema is domain/hcs/policy.ts.
    hcs: hcsPolicySchema.prefault({}).meta({
      description:
        'the whole HL7 HCS policy: purposes of use, obligations, ceilings, break the glass ([HCS](hcs.md#policy)); the `AUTHZ_HCS_*` and `AUTHZ_BTG_*` variables override parts of it',
      docDefault: 'the shipped policy',
    }),
    audit: z
      .object({
        checkpointEvery: z
          .number()
          .int()
          .min(1)
          .default(10_000)
          .describe('a signed checkpoint at every multiple of this many events; `audit verify` requires one there'),
        // A running server signs one every interval, even when idle.
        checkpointIntervalSeconds: z
          .number()
          .int()
          .min(1)
          .default(300)
          .describe('a signed checkpoint of the chain head every this many seconds, also when idle'),
        checkpointGraceSeconds: z
          .number()
          .int()
          .min(0)
          .default(300)
          .describe('`audit verify` fails when the newest checkpoint is older than the interval plus this (seconds)'),
        // Checkpoints kept only in Redis do not survive an attacker with Redis access (records/audit/anchor.ts).
        anchorDir: z.string().min(1).optional().meta({
          description:
            'every checkpoint is also appended (O_APPEND, fsync) to a file here, outside Redis ([audit anchoring](security/audit-anchoring.md)); required in production',
          docType: 'directory',
          docDefault: 'development `<dataDir>/audit-anchor`; none in production',
        }),
        anchorUrl: absoluteHttpUrl.optional().describe('also POST every checkpoint as JSON to this collector (a SIEM)'),
        anchorTimeoutMs: z
          .number()
          .int()
          .min(100)
          .max(60_000)
          .default(5000)
          .describe('how long one POST to the anchor URL may take before it counts as failed (ms)'),
        retentionDays: z
          .number()
          .int()
          .min(1)
          .default(365)
          .describe(
            '`smart-authz audit purge` removes events older than this (days; disclosures are kept for `audit.disclosureRetentionDays`)',
          ),
        // HIPAA §164.528 gives patients an accounting of disclosures for the six years before the
        // request, so the default is six years (2192 days: six years including leap days).
        disclosureRetentionDays: z
          .number()
          .int()
          .min(1)
          .default(2192)
          .describe(
            'disclosure events are kept this long (days; six years by default), in the archive chain; must be at least `audit.retentionDays`',
          ),
        disclosureShowStaffNames: z
          .boolean()
          .default(false)
          .describe("the patient's disclosure report names staff members; `false` shows role and organisation only"),
        // Off in production, where it would cost the introspection hot path ~15 µs per request to
        // re-check shapes the builders' types and tests already guarantee.
        validateEvents: z.boolean().optional().meta({
          description: 'check every AuditEvent against the R4 structure before appending it (the test suite checks every builder)',
          docDefault: 'development `true`, production `false`',
        }),
        introspection: z
          .boolean()
          .default(true)
          .describe(
            'record an AuditEvent for every introspection (BALP); off trades the trail for throughput ([benchmarks](benchmarks.md))',
          ),
        // At most 2000, as Lua unpacks a batch onto its stack (limit 8000).
        maxBatch: z.number().int().min(1).max(2000).default(500).describe('most events one append script writes (group commit)'),
        // Instead of tying Redis up (records/audit/search.ts).
        searchMaxCandidates: z
          .number()
          .int()
          .min(100)
          .default(100_000)
          .describe(
            'a search with several parameters that would check more events (its smallest parameter, in its date range) is refused with `too-costly`',
          ),
        // records/audit/chain.ts
        chains: z
          .number()
          .int()
          .min(1)
          .max(64)
          .default(1)
          .describe(
            'hash chains the trail is spread over. One is right for a single Redis or Sentinel; in a Redis Cluster use about twice the number of masters, so audit writes spread over them and move to another chain while one master fails over ([operations](operations.md#audit-trail-in-a-cluster))',
          ),
        // records/audit/pg/
        store: z.enum(['postgres', 'redis']).optional().meta({
          description:
            'where the trail lives for good: `postgres` (Redis is only its intake: a shipper moves entries to PostgreSQL and trims them from Redis) or `redis` (kept in Redis, bounded by the retention); production requires a database URL unless this is `redis` ([audit-postgres](audit-postgres.md))',
          docDefault:
            '`postgres` when a database URL is set (development: also when one answers at `postgres://postgres@127.0.0.1:5432/smart_authz_dev`), else `redis` with a warning',
        }),
        databaseUrl: postgresUrl.optional().describe('PostgreSQL of the audit trail, as the application role (INSERT and SELECT only)'),
        databaseOwnerUrl: postgresUrl.optional().meta({
          description: 'the same database as the schema owner, for `smart-authz audit db migrate` and retention',
          docDefault: 'the database URL',
        }),
        intakeMaxEvents: z
          .number()
          .int()
          .min(1000)
          .default(1_000_000)
          .describe(
            "most events a chain's Redis intake holds that PostgreSQL has not confirmed; past it audited requests get 503 instead of Redis growing until it fails",
          ),
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
        styleUrl: absoluteHttpUrl.optional().meta({
          description: '`smart_style_url` of EHR launches whose EHR names none; https in production',
          docDefault: "`{issuer}/smart-style.json` (this server's own style document)",
        }),
        needPatientBanner: z
          .boolean()
          .default(true)
          .describe('`need_patient_banner` of EHR launches whose EHR does not say ([interop](interop.md))'),
      })
      .default({ needPatientBanner: true }),
    demoData: z.boolean().default(true).describe('development only: seed the demo clients and users (never in production)'),
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
    const providerIds = new Set<string>();
    c.federation.providers.forEach((p, i) => {
      if (providerIds.has(p.id)) ctx.addIssue({ code: 'custom', path: ['federation', 'providers', i, 'id'], message: 'is listed twice' });
      providerIds.add(p.id);
      if (c.mode === 'production' && p.issuer.startsWith('http:'))
        ctx.addIssue({ code: 'custom', path: ['federation', 'providers', i, 'issuer'], message: 'must be https in production' });
    });
    if (!c.federation.passwordSignIn && c.federation.providers.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['federation', 'passwordSignIn'],
        message: 'can only be false when at least one provider is configured (nobody could sign in)',
      });
    }
    if (c.audit.disclosureRetentionDays < c.audit.retentionDays) {
      ctx.addIssue({
        code: 'custom',
        path: ['audit', 'disclosureRetentionDays'],
        message: 'must be at least audit.retentionDays (disclosures are kept at least as long as other events)',
      });
    }
    // A private Redis or PostgreSQL would belong to the worker that started it and stop with it.
    if (c.workers !== undefined && c.workers > 1 && c.mode === 'development' && c.audit.store === undefined && !c.audit.databaseUrl) {
      ctx.addIssue({
        code: 'custom',
        path: ['workers'],
        message:
          'above 1 in development needs the audit trail named: AUTHZ_AUDIT_DATABASE_URL, or AUTHZ_AUDIT_STORE=redis (workers do not start a private PostgreSQL)',
      });
    }
    if (c.mode !== 'production') return;
    const issuer = new URL(c.issuer);
    if (issuer.protocol === 'http:' && !c.proxy) {
      ctx.addIssue({
        code: 'custom',
        path: ['issuer'],
        message: 'must be https in production unless behind a declared proxy (proxy=true)',
      });
    }
    if (issuer.protocol === 'https:' && !c.proxy && !c.tls) {
      ctx.addIssue({
        code: 'custom',
        path: ['tls'],
        message: 'an https issuer needs a TLS certificate and key, or proxy=true behind a TLS-terminating proxy',
      });
    }
    if (c.consents.fhirServerToken && c.consents.fhirServer?.startsWith('http:')) {
      ctx.addIssue({ code: 'custom', path: ['consents', 'fhirServer'], message: 'must be https in production when a token is sent to it' });
    }
    if (c.audit.store !== 'redis' && !c.audit.databaseUrl) {
      // A trail kept in Redis grows with every request and lives in RAM: production names its home (docs/audit-postgres.md).
      ctx.addIssue({
        code: 'custom',
        path: ['audit', 'databaseUrl'],
        message:
          'is required in production (the audit trail is kept in PostgreSQL), unless the trail is kept in Redis on purpose: AUTHZ_AUDIT_STORE=redis',
      });
    }
    if (!c.audit.anchorDir) {
      // Checkpoints kept only in Redis do not survive an attacker with Redis access (docs/security/audit-anchoring.md).
      ctx.addIssue({
        code: 'custom',
        path: ['audit', 'anchorDir'],
        message: 'is required in production: signed audit checkpoints must also be written outside Redis',
      });
    }
    if (c.smart.styleUrl?.startsWith('http:')) {
      ctx.addIssue({ code: 'custom', path: ['smart', 'styleUrl'], message: 'must be https in production' });
    }
    if (!c.cookieKeys) {
      ctx.addIssue({ code: 'custom', path: ['cookieKeys'], message: 'is required in production' });
    }
    // Signing keys live in Redis: unencrypted, a copy of a Redis backup is enough to mint tokens.
    if (!c.keyEncryptionSecret) {
      ctx.addIssue({
        code: 'custom',
        path: ['keyEncryptionSecret'],
        message: 'is required in production (it encrypts the signing keys kept in Redis)',
      });
    }
  });

export type Config = z.infer<typeof configSchema>;
export type RedisSettings = z.infer<typeof redisSchema>;
export type FhirServer = z.infer<typeof fhirServerSchema>;
export type FederationProvider = z.infer<typeof federationProviderSchema>;

/** Production never seeds demo data or starts a private Redis, whatever the file says. */
export function effectiveConfig(c: Config): Config {
  if (c.mode === 'production') return { ...c, demoData: false, devRedis: false };
  return c;
}

/**
 * Server processes to run: the setting, else one per available core in production (capped) and
 * one in development, where a single process is easier to debug and owns its private Redis.
 */
export function workerCount(c: Pick<Config, 'workers' | 'mode'>): number {
  return c.workers ?? (c.mode === 'production' ? Math.min(MAX_WORKERS, availableParallelism()) : 1);
}
