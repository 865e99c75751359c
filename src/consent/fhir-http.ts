import type { Context } from 'koa';
import type { IssueType, OperationOutcome } from './fhir-types.js';

export const FHIR_JSON = 'application/fhir+json';
export const JSON_PATCH = 'application/json-patch+json';

/** An error the consent API answers with an OperationOutcome and this HTTP status. */
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

export function sendFhir(ctx: Context, status: number, body?: unknown): void {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  if (body === undefined) return;
  ctx.body = JSON.stringify(body);
  ctx.type = `${FHIR_JSON}; charset=utf-8`;
}

/** Reads a JSON request body of one of `mediaTypes`, at most `limit` bytes. */
export async function readJsonBody(ctx: Context, mediaTypes: string[], limit: number): Promise<unknown> {
  if (!ctx.request.length && !ctx.get('Transfer-Encoding')) throw new FhirError(400, 'required', 'the request needs a JSON body');
  if (!ctx.is(...mediaTypes)) throw new FhirError(415, 'not-supported', `Content-Type must be ${mediaTypes.join(' or ')}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new FhirError(413, 'too-costly', `the request body exceeds ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new FhirError(400, 'structure', 'the request body is not valid JSON');
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
