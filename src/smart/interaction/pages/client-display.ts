/**
 * What a consent page may show of an app's own metadata. Names are escaped by the views; URLs
 * need more: a logo loads into the page, a home page is a link the user may follow.
 */

/** A logo only from https: no mixed content, no `data:` or `javascript:`, nothing else. */
export function safeLogoUri(value: unknown): string | undefined {
  const url = typeof value === 'string' ? URL.parse(value) : null;
  return url?.protocol === 'https:' ? url.href : undefined;
}

/** The app's home page is linked only when it is a web page (http or https). */
export function safeClientUri(value: unknown): string | undefined {
  const url = typeof value === 'string' ? URL.parse(value) : null;
  return url && (url.protocol === 'https:' || url.protocol === 'http:') ? url.href : undefined;
}

/** "12 August 2026", in UTC so every instance of the server says the same. */
export function longDate(epochMs: number): string {
  return new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' }).format(new Date(epochMs));
}
