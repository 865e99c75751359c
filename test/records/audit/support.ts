import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../src/platform/config/load.js';
import type { Config } from '../../../src/platform/config/schema.js';
import { createLogger } from '../../../src/platform/ops/logger.js';
import { connectRedis, createRedis, type RedisClient } from '../../../src/platform/redis/connection.js';
import { Keyspace } from '../../../src/platform/redis/keyspace.js';
import { KeyStore } from '../../../src/platform/keys/keystore.js';
import type { AuditEvent } from '../../../src/records/audit/audit-event.js';
import { createAuditTrail } from '../../../src/records/audit/trail.js';
import { AuditStore } from '../../../src/records/audit/store.js';
import { keyStoreCheckpointKeys, type CheckpointKeys } from '../../../src/records/audit/checkpoints.js';
import { LOCAL_SUBTYPE_SYSTEM } from '../../../src/records/audit/disclosure.js';

export interface AuditFixture {
  config: Config;
  redis: RedisClient;
  keyspace: Keyspace;
  keys: CheckpointKeys;
  store: AuditStore;
  trail: ReturnType<typeof createAuditTrail>;
  close(): Promise<void>;
}

/** A trail on the suite's real Redis under a fresh prefix, with real signing keys. */
export async function auditFixture(env: Record<string, string> = {}, prefix = `t-${randomUUID().slice(0, 8)}:`): Promise<AuditFixture> {
  // Each fixture anchors its checkpoints in a directory of its own (not the development default under var/).
  const anchorDir = mkdtempSync(join(tmpdir(), 'audit-anchor-'));
  const config = loadConfig({
    REDIS_URL: process.env.REDIS_URL!,
    AUTHZ_REDIS_PREFIX: prefix,
    AUTHZ_LOG_LEVEL: 'silent',
    AUTHZ_AUDIT_ANCHOR_DIR: anchorDir,
    ...env,
  });
  const redis = createRedis(config.redis);
  redis.on('error', () => {});
  await connectRedis(redis);
  const keyspace = new Keyspace(config.redis.prefix);
  await new KeyStore(redis, keyspace).ensureKeys();
  const keys = keyStoreCheckpointKeys(redis, keyspace, undefined);
  const trail = createAuditTrail({ config, redis, keyspace, logger: createLogger('silent'), checkpointKeys: keys });
  // The start-up checkpoint is signed in the background; tests that verify right away need it in.
  await trail.settled();
  return {
    config,
    redis,
    keyspace,
    keys,
    store: new AuditStore(redis, keyspace),
    trail,
    async close() {
      await trail.close();
      redis.disconnect();
    },
  };
}

const local = (code: string) => ({ system: LOCAL_SUBTYPE_SYSTEM, code });

export interface EventSpec {
  patient?: string;
  clientId?: string;
  user?: { accountId: string; fhirUser?: string; name?: string; role?: string; org?: string };
  subtype?: string;
  outcome?: '0' | '4' | '8' | '12';
  recorded?: string;
  ip?: string;
  scope?: string;
  purpose?: string;
}

/** A BALP-shaped token event (the shape the event builders produce), for tests of the core. */
export function sampleEvent(spec: EventSpec = {}): AuditEvent {
  const clientId = spec.clientId ?? 'demo-app';
  return {
    resourceType: 'AuditEvent',
    type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110114', display: 'User Authentication' },
    subtype: [{ system: 'urn:ihe:event-type-code', code: 'ITI-71', display: 'Get Access Token' }, local(spec.subtype ?? 'token-issued')],
    action: 'E',
    recorded: spec.recorded ?? new Date().toISOString(),
    outcome: spec.outcome ?? '0',
    ...(spec.purpose
      ? { purposeOfEvent: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: spec.purpose }] }] }
      : {}),
    agent: [
      {
        type: { coding: [{ system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110150', display: 'Application' }] },
        who: { identifier: { system: 'http://localhost:3000/clients', value: clientId }, display: `App ${clientId}` },
        requestor: !spec.user,
        ...(spec.ip ? { network: { address: spec.ip, type: '2' as const } } : {}),
      },
      ...(spec.user
        ? [
            {
              type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'IRCP' }] },
              who: {
                ...(spec.user.fhirUser ? { reference: spec.user.fhirUser } : {}),
                identifier: { system: 'http://localhost:3000', value: spec.user.accountId },
                ...(spec.user.name ? { display: spec.user.name } : {}),
              },
              ...(spec.user.role
                ? {
                    role: [
                      {
                        coding: [
                          { system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: spec.user.role, display: spec.user.role },
                        ],
                      },
                    ],
                  }
                : {}),
              requestor: true,
              ...(spec.ip ? { network: { address: spec.ip, type: '2' as const } } : {}),
            },
            ...(spec.user.org
              ? [
                  {
                    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleClass', code: 'PROV' }] },
                    who: { display: spec.user.org },
                    requestor: false,
                  },
                ]
              : []),
          ]
        : []),
    ],
    source: { site: 'localhost:3000', observer: { reference: 'Device/smart-authz' } },
    entity: [
      ...(spec.patient
        ? [
            {
              what: { reference: `Patient/${spec.patient}` },
              type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '1' },
              role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' },
            },
          ]
        : []),
      {
        type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2' },
        role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '13' },
        detail: [{ type: 'scope', valueString: spec.scope ?? 'launch/patient patient/*.rs' }],
      },
    ],
  };
}
