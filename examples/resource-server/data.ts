/**
 * The records this example FHIR server holds: the patients the demo users are or act for
 * (src/app/demo-seed.ts: pat.jones is Patient/pat-jones, care.jones acts for pat-jones and sam-jones),
 * a few others for the practitioner's patient search, and the encounter the EHR launch of
 * docs/smart-launch.md names (enc-1).
 */

export type Resource = { resourceType: string; id: string } & Record<string, unknown>;

const MRN = {
  coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR', display: 'Medical record number' }],
  text: 'MRN',
};

function patient(id: string, given: string, family: string, birthDate: string, gender: string, mrn: string): Resource {
  return {
    resourceType: 'Patient',
    id,
    meta: { lastUpdated: '2026-01-05T09:00:00Z' },
    identifier: [{ type: MRN, system: 'urn:oid:1.2.36.146.595.217.0.1', value: mrn }],
    active: true,
    name: [{ use: 'official', family, given: [given] }],
    gender,
    birthDate,
  };
}

export const RESOURCES: readonly Resource[] = [
  patient('pat-jones', 'Pat', 'Jones', '1984-03-12', 'female', 'MRN-1001'),
  patient('sam-jones', 'Sam', 'Jones', '2015-09-30', 'male', 'MRN-1002'),
  patient('alex-rivera', 'Alex', 'Rivera', '1972-11-02', 'other', 'MRN-1003'),
  patient('maria-garcia', 'Maria', 'Garcia', '1990-06-21', 'female', 'MRN-1004'),
  {
    resourceType: 'Encounter',
    id: 'enc-1',
    status: 'in-progress',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB', display: 'ambulatory' },
    type: [{ text: 'Medication review' }],
    subject: { reference: 'Patient/pat-jones' },
    period: { start: '2026-11-20T10:00:00Z' },
  },
];

/** The patient a resource belongs to (its patient compartment), by id. */
export function compartmentOf(resource: Resource): string | undefined {
  if (resource.resourceType === 'Patient') return resource.id;
  const subject = resource.subject as { reference?: string } | undefined;
  return /^Patient\/([A-Za-z0-9.-]{1,64})$/.exec(subject?.reference ?? '')?.[1];
}

function text(v: unknown): string {
  return typeof v === 'string' ? v.toLowerCase() : '';
}

/** FHIR search on the few parameters the example supports; unknown ones are refused by the caller. */
export function matches(resource: Resource, params: URLSearchParams): boolean {
  for (const [name, value] of params) {
    const wanted = value.toLowerCase();
    switch (name) {
      case '_count':
      case '_sort':
        break;
      case '_id':
        if (resource.id !== value) return false;
        break;
      case 'name': {
        const names = (resource.name as { family?: string; given?: string[] }[] | undefined) ?? [];
        const words = names.flatMap((n) => [text(n.family), ...(n.given ?? []).map(text)]);
        if (!words.some((w) => w.startsWith(wanted))) return false;
        break;
      }
      case 'birthdate':
        if (!text(resource.birthDate).startsWith(wanted)) return false;
        break;
      case 'identifier': {
        const ids = (resource.identifier as { system?: string; value?: string }[] | undefined) ?? [];
        const [system, code] = value.includes('|') ? value.split('|', 2) : [undefined, value];
        if (!ids.some((i) => i.value === code && (system === undefined || system === '' || i.system === system))) return false;
        break;
      }
      case 'patient':
      case 'subject':
        if (compartmentOf(resource) !== value.replace(/^Patient\//, '')) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

export const SEARCH_PARAMS: Record<string, readonly string[]> = {
  Patient: ['_id', '_count', 'name', 'birthdate', 'identifier'],
  Encounter: ['_id', '_count', '_sort', 'patient', 'subject'],
};
