import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import { FHIR_JSON, FhirError, operationOutcome } from '../../domain/fhir/errors.js';
import { isRedisOutage, STORE_RETRY_AFTER_SECONDS } from '../redis/outage.js';
import { readJson, type JsonProblem } from './body.js';

/** FHIR over HTTP: writing FHIR JSON, reading a JSON body, and rendering FhirErrors as OperationOutcomes. */

export function sendFhir(ctx: Context, status: number, body?: unknown): void {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  if (body === undefined) return;
  ctx.body = JSON.stringify(body);
  ctx.type = `${FHIR_JSON}; charset=utf-8`;
}

/** Answers a FhirError as an OperationOutcome. */
export function sendOperationOutcome(ctx: Context, err: FhirError): void {
  for (const [name, value] of Object.entries(err.headers)) ctx.set(name, value);
  sendFhir(ctx, err.status, operationOutcome(err.code, err.diagnostics));
}

function bodyProblem(problem: JsonProblem): FhirError {
  switch (problem.kind) {
    case 'missing':
      return new FhirError(400, 'required', 'the request needs a JSON body');
    case 'media-type':
      return new FhirError(415, 'not-supported', `Content-Type must be ${problem.types.join(' or ')}`);
    case 'too-large':
      return new FhirError(413, 'too-costly', `the request body exceeds ${problem.limit} bytes`);
    case 'not-json':
      return new FhirError(400, 'structure', 'the request body is not valid JSON');
  }
}

/** Reads a JSON request body of one of `mediaTypes`, at most `limit` bytes. */
export function readJsonBody(ctx: Context, mediaTypes: readonly string[], limit: number): Promise<unknown> {
  return readJson(ctx, { types: mediaTypes, limit, required: true, refuse: bodyProblem });
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
          problem = new FhirError(503, 'transient', 'The service cannot reach its data store. Try again shortly.', {
            'Retry-After': String(STORE_RETRY_AFTER_SECONDS),
          });
        } else {
          logger.error({ err, requestId: ctx.state.requestId }, `${api} request failed`);
          problem = new FhirError(500, 'exception', 'an unexpected error occurred');
        }
      }
      sendOperationOutcome(ctx, problem);
    }
  };
}
