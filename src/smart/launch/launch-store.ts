import { createHash, randomBytes } from 'node:crypto';
import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';
import type { FhirContextItem } from '../../domain/fhir/types.js';

/** What an EHR hands to an app through an opaque `launch` value (SMART EHR launch). */
export interface LaunchContext {
  patient?: string;
  encounter?: string;
  fhirContext?: FhirContextItem[];
  intent?: string;
  need_patient_banner?: boolean;
  smart_style_url?: string;
  tenant?: string;
  /** SCIM user id the launch is pinned to. */
  user?: string;
  /** FHIR base the launch is for (every launch has one); the authorization request's `aud` must name it. */
  aud: string;
  /** The app it was made for, when the EHR said so. */
  clientId?: string;
  /** The EHR-launcher client that created it. */
  createdBy: string;
}

/** 32 random bytes, base64url: exactly 43 characters. */
const LAUNCH_VALUE = /^[A-Za-z0-9_-]{43}$/;

/**
 * Launch contexts in Redis under a digest of their value, for `ttlSeconds`. `consume` reads and
 * deletes in one GETDEL, so two authorizations racing on one launch cannot both use it.
 */
export class LaunchStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly keyspace: Keyspace,
    readonly ttlSeconds: number,
  ) {}

  async create(ctx: LaunchContext): Promise<string> {
    const launch = randomBytes(32).toString('base64url');
    await this.redis.set(this.key(launch), JSON.stringify(ctx), 'EX', this.ttlSeconds);
    return launch;
  }

  async get(launch: string): Promise<LaunchContext | undefined> {
    if (!LAUNCH_VALUE.test(launch)) return undefined;
    return decode(await this.redis.get(this.key(launch)));
  }

  async consume(launch: string): Promise<LaunchContext | undefined> {
    if (!LAUNCH_VALUE.test(launch)) return undefined;
    return decode(await this.redis.getdel(this.key(launch)));
  }

  private key(launch: string): string {
    return this.keyspace.launch(createHash('sha256').update(launch).digest('base64url'));
  }
}

function decode(raw: string | null): LaunchContext | undefined {
  if (raw === null) return undefined;
  const parsed = JSON.parse(raw) as unknown;
  // A launch without an audience (stored before every launch had one) is not usable: fail closed.
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    typeof (parsed as LaunchContext).createdBy !== 'string' ||
    typeof (parsed as LaunchContext).aud !== 'string'
  )
    return undefined;
  return parsed as LaunchContext;
}
