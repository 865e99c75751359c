/**
 * The PostgreSQL audit store (issue 17; docs/audit-postgres.md): schema and roles, month
 * partitions and retention, append/read/search, and verify.
 */
export { migrateAuditDatabase, grantAuditWriter, AUDIT_SCHEMA, type MigrateOptions } from './migrate.js';
export { ensurePartitions, listPartitions, monthStart } from './partitions.js';
export { pgPurge, PgPurgeRefusedError, type PgPurgeDeps, type PgPurgeResult } from './retention.js';
export { PgAuditStore, AuditIntegrityError, AUDIT_SQLSTATE, type PgEntry, type PgCheckpoint, type PgAuditStoreOptions } from './store.js';
export { verifyChains, type PgVerifyReport, type PgVerifyProblem, type PgVerifyOptions } from './verify.js';
