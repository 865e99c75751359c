import cluster from 'node:cluster';
import { loadConfig, ConfigError } from './platform/config/load.js';
import { workerCount } from './platform/config/schema.js';
import { createLogger, syncStdout } from './platform/ops/logger.js';
import { Metrics } from './platform/ops/metrics.js';
import { openRuntime, StartupError } from './app/runtime.js';
import { resolveCookieKeys } from './platform/keys/cookie-keys.js';
import { drainMsFor, listen, readTls } from './app/server.js';
import { clusterWorker, superviseWorkers, METRICS_SCRAPE_TIMEOUT_MS } from './app/cluster.js';
import { workerMetrics } from './platform/ops/cluster-metrics.js';
import { startKeyWatcher } from './platform/keys/watcher.js';
import { KeyStoreError } from './platform/keys/errors.js';
import { circuitBreakerFor, connectionHealth, type StoreHealth } from './platform/redis/circuit-breaker.js';
import { superviseReconnects, type RedisClient } from './platform/redis/connection.js';
import type { Redis } from 'ioredis';

/** A worker's own clean-up after its grace period (outbox, trail, shipper, Redis) before the primary kills it. */
const WORKER_STOP_MARGIN_MS = 10_000;

/** Problems an operator can fix get one line on stderr and exit code 1, never a stack trace. */
function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
    readTls(config); // unreadable TLS files are configuration errors too, reported before anything starts
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  const workers = workerCount(config);
  if (cluster.isPrimary && workers > 1) {
    await superviseWorkers({
      workers,
      logger: createLogger(config.log.level, syncStdout()),
      stopTimeoutMs: drainMsFor(config) + config.http.shutdownGraceMs + WORKER_STOP_MARGIN_MS,
    });
  }
  const worker = clusterWorker();
  // A private development Redis would belong to the worker that started it and stop with it,
  // under the other workers' feet: workers connect to the configured one.
  if (worker) config = { ...config, devRedis: false };
  const logger = worker ? createLogger(config.log.level).child({ worker: worker.id }) : createLogger(config.log.level);
  const runtime = await openRuntime(config, logger);
  // The trail's home (PostgreSQL) when it has one; Redis is then only its intake.
  const { openAuditDatabase, bindTrail, AuditDatabaseError } = await import('./records/audit/pg/connect.js');
  let auditDb: Awaited<ReturnType<typeof openAuditDatabase>>;
  try {
    auditDb = await openAuditDatabase(config, logger);
    if (auditDb) await bindTrail(auditDb, runtime.redis, runtime.keyspace);
  } catch (err) {
    await auditDb?.close();
    if (err instanceof AuditDatabaseError) fail(err.message);
    throw err;
  }
  // A trail the append script cannot continue is an operator's fix, reported before anything starts.
  const { AuditStore } = await import('./records/audit/store.js');
  const { requireCurrentLayout, LegacyTrailError } = await import('./records/audit/migrate.js');
  try {
    await requireCurrentLayout(new AuditStore(runtime.redis, runtime.keyspace));
  } catch (err) {
    if (err instanceof LegacyTrailError) fail(err.message);
    throw err;
  }
  // oidc-provider is imported only once configuration and Redis are known to be good, so an
  // operator error prints exactly one line (its import prints a runtime notice on Node 20).
  const { buildApp } = await import('./app/app.js');
  const { metricsAccessFor } = await import('./platform/http/health.js');
  const { clientRegistryFor } = await import('./oauth/clients/wiring.js');
  const { loadClientsFile } = await import('./oauth/clients/file-loader.js');
  const { seedDemoData } = await import('./app/demo-seed.js');
  const { ensurePatientSearchClient } = await import('./smart/interaction/fhir-search/service-credential.js');
  const { redis, keyspace, keystore } = runtime;
  // In a worker, a scrape gets the total over all workers (the primary sums their registries).
  const metrics = new Metrics(worker ? { scrape: (registry) => workerMetrics(registry, METRICS_SCRAPE_TIMEOUT_MS) } : {});
  let shuttingDown = false;
  // Until the server listens, start-up work keeps the client's own timeouts; then the circuit
  // breaker gives each command the serving budget and fails fast while Redis does not answer.
  let storeHealth: StoreHealth = connectionHealth(redis);

  const keys = await keystore.ensureKeys();
  const cookieKeys = await resolveCookieKeys(config, redis, keyspace);
  // One audit trail for the process: provider rebuilds (key rotation) keep appending through it.
  const { createAuditTrail } = await import('./records/audit/trail.js');
  const audit = createAuditTrail({ config, redis, keyspace, logger, metrics, intake: auditDb !== undefined });
  const build = (jwks: Awaited<ReturnType<typeof keystore.providerJwks>>) =>
    buildApp({
      config,
      logger,
      redis,
      keyspace,
      metrics,
      jwks,
      cookieKeys,
      isShuttingDown: () => shuttingDown,
      audit,
      ...(auditDb ? { auditHome: auditDb.home } : {}),
      storeHealth: { available: () => storeHealth.available(), ping: (timeoutMs) => storeHealth.ping(timeoutMs) },
    });

  let app = build(keys.jwks);
  const registry = clientRegistryFor(app, redis, keyspace);
  if (config.clientsFile) {
    const result = await loadClientsFile(config.clientsFile, registry);
    logger.info(
      { file: config.clientsFile, created: result.created.length, updated: result.updated.length, unchanged: result.unchanged.length },
      'clients file loaded',
    );
  }
  if (config.demoData) await seedDemoData({ config, registry, redis, keyspace, logger });
  await ensurePatientSearchClient(registry, config.clientAuthSigningAlgs);
  const { ensureManageClient } = await import('./oauth/clients/manage-client.js');
  // The management page can also register it on first use; a failure here only delays that.
  await ensureManageClient(registry, config.issuer).catch((err: unknown) =>
    logger.error({ err: { message: (err as Error).message } }, 'could not register the management page client'),
  );

  const metricsAccess = metricsAccessFor(config.metrics, config.mode);
  if ('open' in metricsAccess && !metricsAccess.open) {
    logger.warn('/metrics is off: set AUTHZ_METRICS_TOKEN for scrapers (or AUTHZ_METRICS_OPEN=true on a private network)');
  }
  const breaker = circuitBreakerFor(redis, {
    commandTimeoutMs: config.http.redisCommandTimeoutMs,
    onChange: (state, reason) => {
      if (state === 'open') logger.warn({ reason }, 'Redis is not answering: requests get 503 until a PING succeeds');
      else logger.info('Redis answers again');
    },
  });
  storeHealth = breaker;
  // Signals are taken from before the port opens: a SIGTERM that arrives while the rest starts
  // up (a load balancer saw /readyz answer) waits for it and then shuts down gracefully, instead
  // of killing the process with the default action.
  const signals: { shutdown?: (signal: string) => Promise<void>; pending?: string } = {};
  const onSignal = (signal: string) => {
    if (signals.shutdown) void signals.shutdown(signal);
    else signals.pending ??= signal;
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
  worker?.onStopRequest(() => onSignal('SIGTERM'));
  const http = await listen(config, app.callback(), logger);

  // Consents also go to a FHIR server when one is configured; the outbox in Redis holds them
  // until it answers, so the worker starts only once this instance serves.
  const { startConsentOutbox } = await import('./records/consent/outbox.js');
  const { ConsentStore } = await import('./records/consent/consent-store.js');
  const consentOutbox = startConsentOutbox({
    redis,
    keyspace,
    store: new ConsentStore(redis, keyspace),
    fhirServer: config.consents.fhirServer,
    token: config.consents.fhirServerToken,
    logger,
  });

  // Every instance ships; a lease per chain lets one of them move each chain at a time.
  const { AuditShipper } = await import('./records/audit/shipper.js');
  // On a connection of its own: a shipping batch (up to 1,000 entries read, dropped, re-indexed)
  // must not queue ahead of requests' commands on theirs, nor they ahead of it.
  const shipRedis: RedisClient | undefined = auditDb ? (redis as { duplicate(): RedisClient }).duplicate() : undefined;
  if (shipRedis && !(shipRedis as { isCluster?: boolean }).isCluster) superviseReconnects(shipRedis as Redis);
  shipRedis?.on('error', (err: Error) => logger.warn({ err: { message: err.message } }, 'redis connection problem (audit shipper)'));
  const shipper =
    auditDb && shipRedis
      ? new AuditShipper({
          redis: shipRedis,
          keyspace,
          store: new AuditStore(shipRedis, keyspace, config.audit.chains, auditDb.home),
          pg: auditDb.store,
          checkpoints: audit.checkpoints,
          logger,
          metrics,
        })
      : undefined;
  shipper?.start();

  // Rotation needs no restart: every instance notices the key-set version change and swaps in a
  // provider built with the new keys; in-flight requests finish on the old one.
  const stopWatching = startKeyWatcher(
    keystore,
    config.keyReloadIntervalMs,
    (jwks) => {
      app = build(jwks);
      http.setHandler(app.callback());
      logger.info({ kids: jwks.keys.map((k) => k.kid) }, 'signing keys reloaded');
    },
    { since: keys.version, onError: (err) => logger.error({ err: { message: (err as Error).message } }, 'signing key reload failed') },
  );

  const drainMs = drainMsFor(config);
  const shutdown = async (signal: string) => {
    if (shuttingDown) return;
    // From here /readyz answers 503; the port stays open for the drain so that a load balancer
    // sees the instance leave instead of refused connections.
    shuttingDown = true;
    logger.info({ signal, drainMs }, 'shutting down');
    stopWatching();
    await http.drain(drainMs);
    await http.close(config.http.shutdownGraceMs);
    await consentOutbox?.stop();
    // Events of requests that finished during the grace period are appended before Redis closes.
    await audit.close();
    // Last: what the trail appended while closing is shipped by the next instance's shipper.
    await shipper?.stop();
    shipRedis?.disconnect();
    await auditDb?.close();
    breaker.stop();
    await runtime.close();
    logger.info('stopped');
    process.exit(0);
  };
  signals.shutdown = shutdown;
  if (signals.pending) void shutdown(signals.pending);
  else worker?.ready();
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError || err instanceof StartupError || err instanceof KeyStoreError) fail(err.message);
  // Client definition errors (clients file) are operator errors too; matched by name because the
  // registry module loads oidc-provider, which main only imports after the config is valid.
  if (err instanceof Error && err.name === 'ClientRegistryError') fail(err.message);
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') fail(`cannot listen: the port is already in use (${(err as Error).message})`);
  console.error('fatal start-up error:', err instanceof Error ? err.message : String(err));
  process.exit(1);
});
