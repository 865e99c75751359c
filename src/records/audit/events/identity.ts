import type { UserInfo } from './agents.js';
import type { Coding } from './vocabulary.js';

/**
 * The user agent from what a token carries: `fhirUser`, and the IHE IUA identity claims
 * (`extensions.ihe_iua`: subject_name, subject_organization(_id), subject_role, purpose_of_use)
 * once tokens carry them. Unknown or malformed values are left out rather than guessed.
 */

/** FHIR code and uri lexical rules: a claim that breaks them is dropped, not allowed to fail the event. */
const CODE = /^\S+( \S+)*$/;
const URI = /^\S+$/;

function codings(value: unknown): Coding[] {
  if (!Array.isArray(value)) return [];
  return value
    .filter(
      (c): c is Coding =>
        typeof c === 'object' && c !== null && typeof (c as Coding).system === 'string' && typeof (c as Coding).code === 'string',
    )
    .filter((c) => URI.test(c.system) && c.system.length <= 1024 && CODE.test(c.code) && c.code.length <= 256)
    .slice(0, 16)
    .map((c) => ({
      system: c.system,
      code: c.code,
      ...(typeof c.display === 'string' && c.display ? { display: c.display.slice(0, 256) } : {}),
    }));
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value ? value.slice(0, 256) : undefined;
}

export function userFromClaims(accountId: string, claims: Record<string, unknown>, tokenJti?: string): UserInfo {
  const iua = ((claims.extensions as Record<string, unknown> | undefined)?.ihe_iua ?? {}) as Record<string, unknown>;
  const roles = codings(iua.subject_role);
  const purposeOfUse = codings(iua.purpose_of_use);
  const orgName = text(iua.subject_organization);
  const orgId = text(iua.subject_organization_id);
  const fhirUser = text(claims.fhirUser);
  const name = text(iua.subject_name);
  return {
    accountId,
    ...(fhirUser ? { fhirUser } : {}),
    ...(name ? { name } : {}),
    ...(roles.length ? { roles } : {}),
    ...(purposeOfUse.length ? { purposeOfUse } : {}),
    ...(orgName || orgId
      ? { organization: { ...(orgName ? { name: orgName } : {}), ...(orgId ? { identifier: { value: orgId } } : {}) } }
      : {}),
    ...(tokenJti ? { tokenJti } : {}),
  };
}
