import type { Consent, Narrative, Reference } from '../../domain/fhir/types.js';

/**
 * Consent.text. Every value in it may come from a client (its name, its scopes), so the XHTML is
 * assembled from fixed markup and `escapeXhtml` output only: no value can open a tag or an
 * attribute, whatever it contains.
 */

/** XML 1.0 `Char`: anything else (most control characters, lone surrogates) cannot appear even escaped. */
function isXmlChar(code: number): boolean {
  return (
    code === 0x9 ||
    code === 0xa ||
    code === 0xd ||
    (code >= 0x20 && code <= 0xd7ff) ||
    (code >= 0xe000 && code <= 0xfffd) ||
    (code >= 0x10000 && code <= 0x10ffff)
  );
}

const ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text safe anywhere in XHTML content or attribute values: markup characters escaped, non-XML characters dropped. */
export function escapeXhtml(value: string): string {
  let out = '';
  for (const ch of value) {
    if (!isXmlChar(ch.codePointAt(0)!)) continue;
    out += ENTITIES[ch] ?? ch;
  }
  return out;
}

function who(ref: Reference | undefined): string {
  if (!ref) return 'someone';
  const id = ref.reference ?? ref.identifier?.value ?? 'unknown';
  return ref.display ? `${ref.display} (${id})` : id;
}

/** An app's display already names its client id. */
function app(ref: Reference | undefined): string {
  return ref?.display ?? ref?.reference ?? ref?.identifier?.value ?? 'unknown';
}

function paragraph(text: string): string {
  return `<p>${escapeXhtml(text)}</p>`;
}

/** A narrative that says what the Consent says, built from the resource itself. */
export function consentNarrative(consent: Consent): Narrative {
  const provision = consent.provision;
  const permit = provision?.type === 'permit';
  const lines: string[] = [];
  lines.push(`<p><b>${escapeXhtml(permit ? 'Access permitted' : 'Access refused')}</b> ${escapeXhtml(`(status: ${consent.status})`)}</p>`);
  lines.push(
    paragraph(
      `${who(consent.performer[0])} ${permit ? 'allowed' : 'refused'} the app ${app(provision?.actor?.[0]?.reference)} access to the record of ${consent.patient.reference ?? 'the patient'}.`,
    ),
  );
  const classes = provision?.class?.map((c) => c.code) ?? [];
  lines.push(
    paragraph(classes.length ? `Resource types: ${classes.join(', ')}.` : 'Resource types: all (the scopes name every resource type).'),
  );
  const actions = provision?.action?.map((a) => a.coding[0]?.code ?? '') ?? [];
  if (actions.length) lines.push(paragraph(`Actions: ${actions.join(', ')}.`));
  const purposes = provision?.purpose?.map((p) => p.code) ?? [];
  if (purposes.length) lines.push(paragraph(`Purpose of use: ${purposes.join(', ')}.`));
  const period = provision?.period;
  if (period?.start) lines.push(paragraph(period.end ? `Valid from ${period.start} until ${period.end}.` : `Recorded on ${period.start}.`));
  const excluded = provision?.provision?.flatMap((p) => p.securityLabel?.map((l) => l.code) ?? []) ?? [];
  if (excluded.length)
    lines.push(paragraph(`Except data labelled ${excluded.join(', ')} (above the confidentiality level this access allows).`));
  return { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${lines.join('')}</div>` };
}
