import type { IssueType, OperationOutcome } from './types.js';

/**
 * FHIR's error wire format: an error a FHIR API answers with an OperationOutcome and an HTTP status.
 * Pure, so search-parameter and resource parsing anywhere can throw it; platform/http/fhir.ts
 * renders it.
 */

export const FHIR_JSON = 'application/fhir+json';
export const JSON_PATCH = 'application/json-patch+json';

/** An error a FHIR API answers with an OperationOutcome and this HTTP status. */
export class FhirError extends Error {
  override name = 'FhirError';

  constructor(
    readonly status: number,
    readonly code: IssueType,
    readonly diagnostics: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(diagnostics);
  }
}

export function operationOutcome(code: IssueType, diagnostics: string): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics }] };
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
