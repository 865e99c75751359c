import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import { FHIR_JSON, FhirError, operationOutcome } from '../../domain/fhir/errors.js';
import { isRedisOutage } from '../redis/outage.js';
import { STORE_RETRY_AFTER_SECONDS } from './errors.js';

/** FHIR over HTTP: writing FHIR JSON, reading a JSON body, and rendering FhirErrors as OperationOutcomes. */

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

/**
 * Turns whatever a FHIR route throws into an OperationOutcome: FhirErrors as they are, the API's
 * own errors through `translate`, Koa's client errors as `invalid`, anything else as a logged 500
 * that reveals nothing.
 */
export function fhirErrorBoundary(logger: Logger, api: string, translate: (err: unknown) => FhirError | undefined = () => undefined) {
  return async function renderOperationOutcome(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (err) {
      let problem = err instanceof FhirError ? err : translate(err);
      if (!problem) {
        const status = (err as { status?: number }).status ?? 500;
        if ((err as { expose?: boolean }).expose && status < 500) problem = new FhirError(status, 'invalid', (err as Error).message);
        else if (isRedisOutage(err)) {
          logger.warn({ err: { message: (err as Error).message }, requestId: ctx.state.requestId }, `${api} request: store unavailable`);
          problem = new FhirError(503, 'transient', 'The service cannot reach its data store. Try again shortly.', { 'Retry-After': String(STORE_RETRY_AFTER_SECONDS) });
        } else {
          logger.error({ err, requestId: ctx.state.requestId }, `${api} request failed`);
          problem = new FhirError(500, 'exception', 'an unexpected error occurred');
        }
      }
      for (const [name, value] of Object.entries(problem.headers)) ctx.set(name, value);
      sendFhir(ctx, problem.status, operationOutcome(problem.code, problem.diagnostics));
    }
  };
}
