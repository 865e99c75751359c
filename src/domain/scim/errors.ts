/**
 * SCIM's error wire format (RFC 7644 §3.12): an error a SCIM API answers with this HTTP status and
 * `scimType`. Pure, so the user directory (records/) can throw it as well as the SCIM routes;
 * platform/http/scim.ts renders it as a `urn:ietf:params:scim:api:messages:2.0:Error` body.
 * Details name the attribute at fault but never echo a password or any other write-only value.
 */

export type ScimType =
  | 'invalidFilter'
  | 'tooMany'
  | 'uniqueness'
  | 'mutability'
  | 'invalidSyntax'
  | 'invalidPath'
  | 'noTarget'
  | 'invalidValue'
  | 'invalidVers'
  | 'sensitive';

/** An error a SCIM API answers with this HTTP status (and `headers`, e.g. a WWW-Authenticate challenge). */
export class ScimError extends Error {
  constructor(
    readonly status: number,
    readonly scimType: ScimType | undefined,
    readonly detail: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(detail);
    this.name = 'ScimError';
  }
}

export const invalidValue = (detail: string) => new ScimError(400, 'invalidValue', detail);
export const invalidSyntax = (detail: string) => new ScimError(400, 'invalidSyntax', detail);
export const invalidFilter = (detail: string) => new ScimError(400, 'invalidFilter', detail);
export const invalidPath = (detail: string) => new ScimError(400, 'invalidPath', detail);
export const mutability = (detail: string) => new ScimError(400, 'mutability', detail);
export const noTarget = (detail: string) => new ScimError(400, 'noTarget', detail);
export const notFound = (resourceType: string, id: string) =>
  new ScimError(404, undefined, `${resourceType} ${JSON.stringify(id)} not found`);
export const preconditionFailed = (current: string) =>
  new ScimError(412, undefined, `If-Match does not match the current version (${current}); read the resource again and retry`);
