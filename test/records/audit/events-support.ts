import { createHash } from 'node:crypto';
import type { TestApp } from '../../support/test-app.js';
import { auditEventProblems, type AuditEvent } from '../../../src/records/audit/audit-event.js';
import { LOCAL_SUBTYPE_SYSTEM } from '../../../src/records/audit/disclosure.js';
import { TOKEN_SHA256_SYSTEM } from '../../../src/records/audit/events/vocabulary.js';
import { readTrail } from './trail-reader.js';

/** Every event in the app's trail, oldest first, as stored in Redis. */
export async function trailOf(t: Pick<TestApp, 'redis' | 'keyspace' | 'config'>): Promise<AuditEvent[]> {
  return readTrail(t);
}

/** The events recorded by `action` (read the trail before and after). */
export async function recordedBy<T>(
  t: Pick<TestApp, 'redis' | 'keyspace' | 'config'>,
  action: () => Promise<T>,
): Promise<{ result: T; events: AuditEvent[] }> {
  const before = (await trailOf(t)).length;
  const result = await action();
  const events = (await trailOf(t)).slice(before);
  return { result, events };
}

export function localCode(e: AuditEvent): string | undefined {
  return e.subtype?.find((c) => c.system === LOCAL_SUBTYPE_SYSTEM)?.code;
}

export function subtypeCodes(e: AuditEvent): string[] {
  return (e.subtype ?? []).map((c) => c.code!);
}

export function withLocal(events: AuditEvent[], code: string): AuditEvent[] {
  return events.filter((e) => localCode(e) === code);
}

export function one(events: AuditEvent[], code: string): AuditEvent {
  const found = withLocal(events, code);
  if (found.length !== 1)
    throw new Error(
      `expected one ${code} event, found ${found.length} among [${events.map((e) => localCode(e) ?? subtypeCodes(e).join('+')).join(', ')}]`,
    );
  return found[0]!;
}

/** Structure (zod schema of R4 AuditEvent) and this server's envelope. */
export function expectValid(e: AuditEvent): void {
  expect(auditEventProblems(e)).toEqual([]);
  expect(e.source.observer.reference).toBe('Device/smart-authz');
  expect(e.source.type?.[0]?.code).toBe('6');
  expect(e.agent.some((a) => a.type?.coding?.some((c) => c.code === 'AuthzOauthService'))).toBe(true);
}

/** No secret value appears anywhere in the event (also not URL- or JSON-escaped). */
export function expectNoSecrets(e: AuditEvent, secrets: Array<string | undefined>): void {
  const text = JSON.stringify(e);
  for (const s of secrets) {
    if (!s) continue;
    expect(text).not.toContain(s);
    expect(text).not.toContain(encodeURIComponent(s));
    // A long secret's recognisable part (e.g. a JWT's signature) must not be there either.
    if (s.length > 40) expect(text).not.toContain(s.slice(-32));
  }
}

export function patientOf(e: AuditEvent): string | undefined {
  return e.entity?.find((x) => x.role?.code === '1' && x.role.system === 'http://terminology.hl7.org/CodeSystem/object-role')?.what
    ?.reference;
}

export function agentByType(e: AuditEvent, code: string) {
  return e.agent.filter((a) => a.type?.coding?.some((c) => c.code === code));
}

export function clientIds(e: AuditEvent): string[] {
  return agentByType(e, '110150').map((a) => a.who?.identifier?.value ?? '');
}

export function sha256(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}

/** The identifiers of token entities. */
export function tokenIdentifiers(e: AuditEvent): Array<{ system?: string; value?: string }> {
  return (e.entity ?? []).filter((x) => x.role?.code === '13' && x.what?.identifier).map((x) => x.what!.identifier!);
}

export function hashedToken(value: string): { system: string; value: string } {
  return { system: TOKEN_SHA256_SYSTEM, value: sha256(value) };
}

export function detail(e: AuditEvent, type: string): string | undefined {
  for (const x of e.entity ?? []) {
    const d = x.detail?.find((y) => y.type === type);
    if (d) return d.valueString;
  }
  return undefined;
}
