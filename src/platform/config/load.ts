import { readFileSync } from 'node:fs';
import { configSchema, effectiveConfig, type Config } from './schema.js';

/** Thrown for any unusable setting; `message` is one line naming the setting. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Kind = 'string' | 'int' | 'bool' | 'list' | 'hostports' | 'fhirServers' | 'words' | 'jsonFile';

/** Environment variable → config path. Environment wins over the JSON file. */
export const ENV_VARS: ReadonlyArray<readonly [string, string, Kind]> = [
  ['AUTHZ_MODE', 'mode', 'string'],
  ['AUTHZ_ISSUER', 'issuer', 'string'],
  ['AUTHZ_HOST', 'host', 'string'],
  ['PORT', 'port', 'int'],
  ['AUTHZ_PORT', 'port', 'int'],
  ['AUTHZ_WORKERS', 'workers', 'int'],
  ['AUTHZ_PROXY', 'proxy', 'bool'],
  ['AUTHZ_TLS_CERT', 'tls.certFile', 'string'],
  ['AUTHZ_TLS_KEY', 'tls.keyFile', 'string'],
  ['REDIS_URL', 'redis.url', 'string'],
  ['AUTHZ_REDIS_URL', 'redis.url', 'string'],
  ['AUTHZ_REDIS_SENTINELS', 'redis.sentinels', 'hostports'],
  ['AUTHZ_REDIS_SENTINEL_NAME', 'redis.sentinelName', 'string'],
  ['AUTHZ_REDIS_CLUSTER_NODES', 'redis.clusterNodes', 'hostports'],
  ['AUTHZ_REDIS_USERNAME', 'redis.username', 'string'],
  ['AUTHZ_REDIS_PASSWORD', 'redis.password', 'string'],
  ['AUTHZ_REDIS_PREFIX', 'redis.prefix', 'string'],
  ['AUTHZ_REDIS_MIN_REPLICAS', 'redis.minReplicas', 'int'],
  ['AUTHZ_REDIS_WAIT_TIMEOUT_MS', 'redis.waitTimeoutMs', 'int'],
  ['AUTHZ_DEV_REDIS', 'devRedis', 'bool'],
  ['AUTHZ_DATA_DIR', 'dataDir', 'string'],
  ['AUTHZ_FHIR_SERVERS', 'fhirServers', 'fhirServers'],
  ['AUTHZ_TTL_ACCESS_TOKEN', 'ttl.accessToken', 'int'],
  ['AUTHZ_TTL_BACKEND_ACCESS_TOKEN', 'ttl.backendAccessToken', 'int'],
  ['AUTHZ_TTL_AUTHORIZATION_CODE', 'ttl.authorizationCode', 'int'],
  ['AUTHZ_TTL_REFRESH_TOKEN', 'ttl.refreshToken', 'int'],
  ['AUTHZ_TTL_ID_TOKEN', 'ttl.idToken', 'int'],
  ['AUTHZ_TTL_SESSION', 'ttl.session', 'int'],
  ['AUTHZ_TTL_INTERACTION', 'ttl.interaction', 'int'],
  ['AUTHZ_TTL_GRANT', 'ttl.grant', 'int'],
  ['AUTHZ_TTL_LAUNCH', 'ttl.launch', 'int'],
  ['AUTHZ_COOKIE_KEYS', 'cookieKeys', 'list'],
  ['AUTHZ_KEY_ENCRYPTION_SECRET', 'keyEncryptionSecret', 'string'],
  ['AUTHZ_KEY_RELOAD_INTERVAL_MS', 'keyReloadIntervalMs', 'int'],
  ['AUTHZ_CLIENTS_FILE', 'clientsFile', 'string'],
  ['AUTHZ_CLIENT_AUTH_ALGS', 'clientAuthSigningAlgs', 'list'],
  ['AUTHZ_REGISTRATION', 'registration.enabled', 'bool'],
  ['AUTHZ_ARGON2_MEMORY_KIB', 'passwords.memoryKiB', 'int'],
  ['AUTHZ_ARGON2_TIME_COST', 'passwords.timeCost', 'int'],
  ['AUTHZ_ARGON2_PARALLELISM', 'passwords.parallelism', 'int'],
  ['AUTHZ_LOGIN_MAX_FAILURES', 'login.maxFailuresPerAccount', 'int'],
  ['AUTHZ_LOGIN_LOCKOUT_SECONDS', 'login.lockoutSeconds', 'int'],
  ['AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE', 'login.maxAttemptsPerIpPerMinute', 'int'],
  ['AUTHZ_MFA_REQUIRE_EVERYONE', 'mfa.requireEveryone', 'bool'],
  ['AUTHZ_MFA_REQUIRE_ROLES', 'mfa.requireRoles', 'list'],
  ['AUTHZ_MFA_REQUIRE_GROUPS', 'mfa.requireGroups', 'list'],
  ['AUTHZ_MFA_REQUIRE_FHIR_USER_TYPES', 'mfa.requireFhirUserTypes', 'list'],
  ['AUTHZ_MFA_BTG_FRESH_SECONDS', 'mfa.breakTheGlassFreshSeconds', 'int'],
  ['AUTHZ_FEDERATION_PROVIDERS', 'federation.providers', 'jsonFile'],
  ['AUTHZ_FEDERATION_PASSWORD_SIGN_IN', 'federation.passwordSignIn', 'bool'],
  ['AUTHZ_SCIM_MAX_FILTER_SCAN', 'scim.maxFilterScan', 'int'],
  ['AUTHZ_SCIM_MAX_PAGE_SIZE', 'scim.maxPageSize', 'int'],
  ['AUTHZ_JWKS_ALLOW_PRIVATE_NETWORKS', 'jwksFetch.allowPrivateNetworks', 'bool'],
  ['AUTHZ_JWKS_FETCH_TIMEOUT_MS', 'jwksFetch.timeoutMs', 'int'],
  ['AUTHZ_BODY_LIMIT', 'http.bodyLimit', 'string'],
  ['AUTHZ_FRAME_ANCESTORS', 'http.frameAncestors', 'words'],
  ['AUTHZ_SHUTDOWN_GRACE_MS', 'http.shutdownGraceMs', 'int'],
  ['AUTHZ_SHUTDOWN_DRAIN_MS', 'http.shutdownDrainMs', 'int'],
  ['AUTHZ_REDIS_COMMAND_TIMEOUT_MS', 'http.redisCommandTimeoutMs', 'int'],
  ['AUTHZ_METRICS_TOKEN', 'metrics.token', 'string'],
  ['AUTHZ_METRICS_OPEN', 'metrics.open', 'bool'],
  ['AUTHZ_LOG_LEVEL', 'log.level', 'string'],
  ['AUTHZ_DEMO_DATA', 'demoData', 'bool'],
  ['AUTHZ_SMART_STYLE_URL', 'smart.styleUrl', 'string'],
  ['AUTHZ_NEED_PATIENT_BANNER', 'smart.needPatientBanner', 'bool'],
  ['AUTHZ_CONSENT_FHIR_SERVER', 'consents.fhirServer', 'string'],
  ['AUTHZ_CONSENT_FHIR_TOKEN', 'consents.fhirServerToken', 'string'],
  ['AUTHZ_CONSENT_REMEMBER', 'consents.remember', 'string'],
  ['AUTHZ_HCS_POLICY', 'hcs', 'jsonFile'],
  ['AUTHZ_HCS_DEFAULT_CEILING', 'hcs.defaultCeiling', 'string'],
  ['AUTHZ_HCS_CHECK_CLIENT_PURPOSES', 'hcs.checks.clientPurposes', 'string'],
  ['AUTHZ_HCS_CHECK_USER_PURPOSES', 'hcs.checks.userPurposes', 'string'],
  ['AUTHZ_HCS_CHECK_BREAK_THE_GLASS', 'hcs.checks.breakTheGlass', 'string'],
  ['AUTHZ_BTG_ACCESS_TOKEN_TTL', 'hcs.breakTheGlass.accessTokenTtl', 'int'],
  ['AUTHZ_BTG_WEBHOOK_URL', 'hcs.breakTheGlass.webhookUrl', 'string'],
  ['AUTHZ_BTG_WEBHOOK_SECRET', 'hcs.breakTheGlass.webhookSecret', 'string'],
  ['AUTHZ_AUDIT_CHAINS', 'audit.chains', 'int'],
  ['AUTHZ_AUDIT_STORE', 'audit.store', 'string'],
  ['AUTHZ_AUDIT_DATABASE_URL', 'audit.databaseUrl', 'string'],
  ['AUTHZ_AUDIT_DATABASE_OWNER_URL', 'audit.databaseOwnerUrl', 'string'],
  ['AUTHZ_AUDIT_INTAKE_MAX_EVENTS', 'audit.intakeMaxEvents', 'int'],
  ['AUTHZ_AUDIT_CHECKPOINT_EVERY', 'audit.checkpointEvery', 'int'],
  ['AUTHZ_AUDIT_CHECKPOINT_INTERVAL_SECONDS', 'audit.checkpointIntervalSeconds', 'int'],
  ['AUTHZ_AUDIT_CHECKPOINT_GRACE_SECONDS', 'audit.checkpointGraceSeconds', 'int'],
  ['AUTHZ_AUDIT_ANCHOR_DIR', 'audit.anchorDir', 'string'],
  ['AUTHZ_AUDIT_ANCHOR_URL', 'audit.anchorUrl', 'string'],
  ['AUTHZ_AUDIT_ANCHOR_TIMEOUT_MS', 'audit.anchorTimeoutMs', 'int'],
  ['AUTHZ_AUDIT_RETENTION_DAYS', 'audit.retentionDays', 'int'],
  ['AUTHZ_AUDIT_DISCLOSURE_RETENTION_DAYS', 'audit.disclosureRetentionDays', 'int'],
  ['AUTHZ_AUDIT_DISCLOSURE_SHOW_STAFF_NAMES', 'audit.disclosureShowStaffNames', 'bool'],
  ['AUTHZ_AUDIT_INTROSPECTION', 'audit.introspection', 'bool'],
  ['AUTHZ_AUDIT_MAX_BATCH', 'audit.maxBatch', 'int'],
  ['AUTHZ_AUDIT_SEARCH_MAX_CANDIDATES', 'audit.searchMaxCandidates', 'int'],
  ['AUTHZ_AUDIT_VALIDATE_EVENTS', 'audit.validateEvents', 'bool'],
];

function convert(name: string, kind: Kind, raw: string): unknown {
  const value = raw.trim();
  switch (kind) {
    case 'string':
      return value;
    case 'int':
      if (!/^-?\d+$/.test(value)) throw new ConfigError(`config error: ${name} must be a whole number, got "${value}"`);
      return Number(value);
    case 'bool':
      if (/^(1|true|yes|on)$/i.test(value)) return true;
      if (/^(0|false|no|off)$/i.test(value)) return false;
      throw new ConfigError(`config error: ${name} must be true or false, got "${value}"`);
    case 'list':
      return value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    case 'words':
      return value.split(/\s+/).filter(Boolean);
    case 'hostports':
      return value.split(',').map((hp) => {
        const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(hp.trim());
        if (!m) throw new ConfigError(`config error: ${name} must be a comma-separated list of host:port, got "${hp.trim()}"`);
        return { host: m[1], port: Number(m[2]) };
      });
    case 'jsonFile':
      // A list (federation.providers) or an object (hcs); the schema checks which.
      return readFile(value, name, { list: true });
    case 'fhirServers':
      // `https://fhir.example/r4` or `tenantA=https://fhir.example/a`, comma separated.
      return value.split(',').map((entry) => {
        const trimmed = entry.trim();
        const eq = trimmed.indexOf('=');
        const looksTenant = eq > 0 && !trimmed.slice(0, eq).includes(':');
        return looksTenant ? { tenant: trimmed.slice(0, eq), base: trimmed.slice(eq + 1) } : { base: trimmed };
      });
  }
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]!] = value;
}

function readFile(path: string, name = 'AUTHZ_CONFIG', opts: { list?: boolean } = {}): Record<string, unknown> | unknown[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`config error: ${name} file ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (opts.list && Array.isArray(parsed)) return parsed as unknown[];
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
    return parsed as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(
      `config error: ${name} file ${path} is not a JSON ${opts.list ? 'list or object' : 'object'} (${(err as Error).message})`,
    );
  }
}

/** The variable to blame: one the operator actually set if any, else the documented one. */
function envNameFor(path: string, env: NodeJS.ProcessEnv): string | undefined {
  const candidates = ENV_VARS.filter(([, p]) => path === p || path.startsWith(`${p}.`) || (path !== '' && p.startsWith(`${path}.`)));
  return (candidates.find(([name]) => env[name]) ?? candidates[0])?.[0];
}

/**
 * Builds the configuration from an optional JSON file (AUTHZ_CONFIG) and the environment, then
 * validates it. Any problem becomes one `ConfigError` line naming the setting.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw = (env.AUTHZ_CONFIG ? readFile(env.AUTHZ_CONFIG) : {}) as Record<string, unknown>;
  if (!env.AUTHZ_MODE && env.NODE_ENV === 'production' && raw.mode === undefined) raw.mode = 'production';
  for (const [name, path, kind] of ENV_VARS) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    setPath(raw, path, convert(name, kind, value));
  }
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const path = issue.path.map(String).join('.');
    const name = envNameFor(issue.path.filter((p) => typeof p === 'string').join('.'), env);
    const where = name ? `${name} (${path || 'config'})` : path || 'config';
    const more = result.error.issues.length > 1 ? ` (+${result.error.issues.length - 1} more)` : '';
    throw new ConfigError(`config error: ${where} ${issue.message}${more}`);
  }
  return effectiveConfig(result.data);
}
