/**
 * If-Match against a stored version counter (RFC 7232 §3.1, weak comparison as RFC 7644 §3.14
 * uses weak ETags): `*` matches any existing version; otherwise one of the listed tags, with or
 * without `W/`, must name it.
 */
export function etagMatches(ifMatch: string, version: string): boolean {
  const value = ifMatch.trim();
  if (value === '*') return true;
  return value
    .split(',')
    .map((tag) =>
      tag
        .trim()
        .replace(/^W\//, '')
        .replace(/^"(.*)"$/, '$1'),
    )
    .some((tag) => tag === version);
}
