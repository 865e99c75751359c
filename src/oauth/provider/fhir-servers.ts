import type { FhirServer } from '../../platform/config/schema.js';

/** Trailing slashes are not significant when comparing an `aud`/`resource` to a FHIR base. */
export function normaliseBase(url: string): string {
  return url.trim().replace(/\/+$/, '');
}

export function findFhirServer(servers: readonly FhirServer[], candidate: string | undefined): FhirServer | undefined {
  if (!candidate) return undefined;
  const wanted = normaliseBase(candidate);
  return servers.find((s) => s.base === wanted);
}

export function findTenant(servers: readonly FhirServer[], tenant: string): FhirServer | undefined {
  return servers.find((s) => s.tenant === tenant);
}
