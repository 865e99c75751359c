import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** One registry per app instance so tests (and several apps in one process) don't collide. */
export class Metrics {
  readonly registry = new Registry();

  readonly requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests by method, route and status code',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });

  readonly latency = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency by method and route',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly tokensIssued = new Counter({
    name: 'oauth_tokens_issued_total',
    help: 'Successful token endpoint responses by grant type',
    labelNames: ['grant_type'] as const,
    registers: [this.registry],
  });

  readonly oauthErrors = new Counter({
    name: 'oauth_errors_total',
    help: 'OAuth error responses by route and error code',
    labelNames: ['route', 'error'] as const,
    registers: [this.registry],
  });

  /** Emergency access grants; alert on any increase (the log line and webhook carry the details). */
  readonly breakTheGlass = new Counter({
    name: 'hcs_break_the_glass_total',
    help: 'Break-the-glass (emergency access) grants',
    registers: [this.registry],
  });

  /** Audit-only HCS policy findings by check (a rule being rolled out shows up here first). */
  readonly hcsFindings = new Counter({
    name: 'hcs_policy_findings_total',
    help: 'HCS policy checks and rules that would have refused or applied in audit-only mode',
    labelNames: ['check'] as const,
    registers: [this.registry],
  });

  readonly auditEvents = new Counter({
    name: 'audit_events_total',
    help: 'AuditEvents appended to the trail (result ok) or refused/lost (result error)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly auditBatchSize = new Histogram({
    name: 'audit_append_batch_size',
    help: 'Events per append script (group commit)',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
    registers: [this.registry],
  });

  readonly auditAnchorWrites = new Counter({
    name: 'audit_anchor_writes_total',
    help: 'Signed audit checkpoints written to an anchor outside Redis, by sink (file, http) and result (ok, error)',
    labelNames: ['sink', 'result'] as const,
    registers: [this.registry],
  });

  readonly auditShipped = new Counter({
    name: 'audit_shipped_events_total',
    help: 'Audit trail entries this instance moved from the Redis intake to PostgreSQL, by chain',
    labelNames: ['chain'] as const,
    registers: [this.registry],
  });

  readonly auditIntakeLagEvents = new Gauge({
    name: 'audit_intake_lag_events',
    help: 'Entries in the Redis intake that PostgreSQL has not confirmed yet, by chain (as last seen by this instance)',
    labelNames: ['chain'] as const,
    registers: [this.registry],
  });

  readonly auditIntakeLagSeconds = new Gauge({
    name: 'audit_intake_lag_seconds',
    help: 'Age of the oldest entry in the Redis intake that PostgreSQL has not confirmed, by chain (0 when caught up)',
    labelNames: ['chain'] as const,
    registers: [this.registry],
  });

  readonly auditShipErrors = new Counter({
    name: 'audit_ship_errors_total',
    help: 'Failed shipping rounds, by chain and kind (unavailable: PostgreSQL or Redis did not answer; integrity: PostgreSQL refused an entry; gap: the intake does not continue what PostgreSQL holds)',
    labelNames: ['chain', 'kind'] as const,
    registers: [this.registry],
  });

  /**
   * The text a scrape of `/metrics` gets: this registry's own, or with several worker processes the
   * total over all of them (cluster-metrics.ts), which may fail with MetricsUnavailableError.
   */
  readonly scrape: () => Promise<string>;

  constructor(opts: { defaultMetrics?: boolean; scrape?: (registry: Registry) => () => Promise<string> } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.scrape = opts.scrape?.(this.registry) ?? (() => this.registry.metrics());
  }
}
