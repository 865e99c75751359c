import type { Reference } from './types.js';

/** R4 `id`: what may follow `Type/` in a relative reference. */
export const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

const RELATIVE = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/;

/** `Patient/1`, also from an absolute URL (`https://fhir.example/r4/Patient/1`), or undefined. */
export function relativeReference(value: string): { type: string; id: string; reference: string } | undefined {
  const m = RELATIVE.exec(value.trim());
  if (!m) return undefined;
  return { type: m[1]!, id: m[2]!, reference: `${m[1]}/${m[2]}` };
}

/** A patient id from `1`, `Patient/1` or an absolute Patient URL; undefined when it is none of these. */
export function patientIdOf(value: string): string | undefined {
  const trimmed = value.trim();
  if (FHIR_ID.test(trimmed)) return trimmed;
  const ref = relativeReference(trimmed);
  return ref?.type === 'Patient' ? ref.id : undefined;
}

/** Client names are the client's to choose; a display needs no more than this. */
const MAX_NAME = 200;

/** The identifier system under which this server's client ids are unique. */
export function clientIdentifierSystem(issuer: string): string {
  return `${issuer}/clients`;
}

/**
 * An app in FHIR terms. R4 has no "app" resource, so it is a Device: by id when the client id is a
 * valid FHIR id, and always by identifier (the client id at this server), which needs no Device
 * resource to exist anywhere.
 */
export function clientReference(issuer: string, clientId: string, name?: string): Reference {
  const shortName = name?.trim().slice(0, MAX_NAME);
  const display = shortName && shortName !== clientId ? `${shortName} (client_id=${clientId})` : `client_id=${clientId}`;
  return {
    ...(FHIR_ID.test(clientId) ? { reference: `Device/${clientId}` } : {}),
    type: 'Device',
    identifier: { system: clientIdentifierSystem(issuer), value: clientId },
    display,
  };
}
