import type { Context } from 'koa';

/**
 * The one reader of request bodies: every API reads its JSON or form body here, with a byte limit
 * and a media-type check. What goes wrong is a problem (`JsonProblem`, `FormProblem`), which each
 * API turns into an error of its own wire format (OAuth JSON, SCIM, OperationOutcome, page) with
 * its `refuse`: the one place it words those refusals.
 */

/** What may be wrong with any body. */
export type ReadProblem =
  /** No body at all (no Content-Length, no Transfer-Encoding); checked only when `required`. */
  | { kind: 'missing' }
  /** Content-Type is none of `types` (or there is no body to have one). */
  | { kind: 'media-type'; types: readonly string[] }
  /** More than `limit` bytes. */
  | { kind: 'too-large'; limit: number };

export type JsonProblem = ReadProblem | { kind: 'not-json' };
/** A form names the parameter `name` more than once. */
export type FormProblem = ReadProblem | { kind: 'repeated'; name: string };

export interface BodyRules<P> {
  /** Accepted media types, as `ctx.is` takes them. */
  types: readonly string[];
  /** At most this many bytes. */
  limit: number;
  /** Tell a request without a body ('missing') from one of the wrong type ('media-type'). */
  required?: boolean;
  /** The error to throw for a problem, in the API's own wire format. */
  refuse: (problem: P) => Error;
}

/** Reads and parses a JSON body; the value may be anything JSON (the caller checks its shape). */
export async function readJson(ctx: Context, rules: BodyRules<JsonProblem>): Promise<unknown> {
  const raw = await readRaw(ctx, rules);
  try {
    return JSON.parse(raw.toString('utf8')) as unknown;
  } catch {
    throw rules.refuse({ kind: 'not-json' });
  }
}

/** Form rules: HTML forms with checkbox lists repeat a name on purpose; OAuth requests may not. */
export interface FormRules extends BodyRules<FormProblem> {
  repeatable?: boolean;
}

/**
 * Reads an application/x-www-form-urlencoded body. Unless the form is `repeatable`, a parameter
 * may appear once (RFC 6749 §3.1): a repeated one is refused rather than one of its values
 * silently chosen.
 */
export async function readForm(ctx: Context, rules: FormRules): Promise<URLSearchParams> {
  const form = new URLSearchParams((await readRaw(ctx, rules)).toString('utf8'));
  if (rules.repeatable) return form;
  const seen = new Set<string>();
  for (const name of form.keys()) {
    if (seen.has(name)) throw rules.refuse({ kind: 'repeated', name });
    seen.add(name);
  }
  return form;
}

async function readRaw(ctx: Context, rules: BodyRules<ReadProblem>): Promise<Buffer> {
  if (rules.required && !ctx.request.length && !ctx.get('Transfer-Encoding')) throw rules.refuse({ kind: 'missing' });
  if (!ctx.is(...rules.types)) throw rules.refuse({ kind: 'media-type', types: rules.types });
  const raw = await bytesWithin(ctx.req, rules.limit);
  if (!raw) throw rules.refuse({ kind: 'too-large', limit: rules.limit });
  return raw;
}

/**
 * The body's bytes, or undefined when there are more than `limit`. Event listeners rather than an
 * async iterator: this is introspection's hot path. An oversized body is drained rather than the
 * stream destroyed, so the refusal still reaches the client (destroying the request mid-body tears
 * down the socket before Koa can respond).
 */
function bytesWithin(req: Context['req'], limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.resume();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

/**
 * A form field that carries a JSON object (a WebAuthn answer posted by the page's script), or
 * undefined when it is missing, over `maxLength` characters, not JSON or not an object: the caller
 * answers that like any wrong answer, never with a 500.
 */
export function jsonFormField<T extends object>(form: URLSearchParams, name: string, maxLength = 20_000): T | undefined {
  const raw = form.get(name);
  if (!raw || raw.length > maxLength) return undefined;
  try {
    const value = JSON.parse(raw) as unknown;
    return value && typeof value === 'object' ? (value as T) : undefined;
  } catch {
    return undefined;
  }
}
