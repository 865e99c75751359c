import type supertest from 'supertest';
import type { Response } from './world.js';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete' | 'head' | 'options';

export interface RawRequest {
  method: Method;
  path: string;
  headers?: Record<string, string | undefined>;
  body?: string;
}

type Agent = ReturnType<typeof supertest> | ReturnType<typeof supertest.agent>;

/** Sends a request exactly as given (no serialisation by supertest): headers left undefined are not sent. */
export async function sendRaw(agent: Agent, req: RawRequest): Promise<Response> {
  let r = agent[req.method](req.path);
  for (const [name, value] of Object.entries(req.headers ?? {})) if (value !== undefined) r = r.set(name, value);
  if (req.body !== undefined && req.method !== 'get' && req.method !== 'head') r = r.send(req.body);
  // Do not follow redirects, and keep any status as a response rather than an exception.
  return r.ok(() => true);
}

export const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
