/**
 * How long a fetched JWK Set stays fresh, from its response headers (RFC 9111, read as a shared
 * cache would):
 * - `no-store` / `no-cache` ask for revalidation every time; we still keep the set for the minimum
 *   so that a busy client cannot turn every token request into a fetch;
 * - `s-maxage` wins over `max-age`; either is reduced by `Age`;
 * - otherwise `Expires`, measured against the response's `Date` when present (immune to clock skew
 *   between us and the host); an unparseable `Expires` means already expired;
 * - otherwise the default; the result is always clamped to [min, max] so that a year-long max-age
 *   cannot pin keys the client has since withdrawn.
 */
export interface LifetimeLimits {
  minSeconds: number;
  maxSeconds: number;
  defaultSeconds: number;
}

type HeaderGetter = (name: string) => string | undefined;

function directives(cacheControl: string): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  for (const part of cacheControl.split(',')) {
    const [rawName, ...rest] = part.split('=');
    const name = rawName?.trim().toLowerCase();
    if (!name) continue;
    const value =
      rest.length > 0
        ? rest
            .join('=')
            .trim()
            .replace(/^"(.*)"$/, '$1')
        : undefined;
    if (!out.has(name)) out.set(name, value);
  }
  return out;
}

function deltaSeconds(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}

function clamp(seconds: number, { minSeconds, maxSeconds }: LifetimeLimits): number {
  return Math.min(maxSeconds, Math.max(minSeconds, Math.floor(seconds)));
}

export function freshLifetimeSeconds(header: HeaderGetter, nowMs: number, limits: LifetimeLimits): number {
  const cc = directives(header('cache-control') ?? '');
  if (cc.has('no-store') || cc.has('no-cache')) return limits.minSeconds;

  const maxAge = deltaSeconds(cc.get('s-maxage')) ?? deltaSeconds(cc.get('max-age'));
  if (maxAge !== undefined) {
    const age = deltaSeconds(header('age')?.trim()) ?? 0;
    return clamp(maxAge - age, limits);
  }

  const expires = header('expires');
  if (expires !== undefined) {
    const expiresAt = Date.parse(expires);
    if (Number.isNaN(expiresAt)) return limits.minSeconds;
    const dateHeader = header('date');
    const date = dateHeader === undefined ? Number.NaN : Date.parse(dateHeader);
    const base = Number.isNaN(date) ? nowMs : date;
    return clamp((expiresAt - base) / 1000, limits);
  }

  return clamp(limits.defaultSeconds, limits);
}
