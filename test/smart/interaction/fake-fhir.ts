import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A FHIR server on 127.0.0.1 just big enough for the pickers: Patient and Encounter search and
 * read, paged with `_offset`. It records every request's Authorization header, and can be told to
 * fail, hang, or hand out a `next` link somewhere else.
 */

export interface FakePatient {
  id: string;
  family: string;
  given: string;
  birthDate: string;
  mrn?: string;
}

export interface FakeEncounter {
  id: string;
  patient: string;
  start: string;
  type: string;
  status?: string;
}

export interface FakeFhir {
  base: string;
  requests: Array<{ path: string; authorization: string | undefined }>;
  patients: FakePatient[];
  encounters: FakeEncounter[];
  /** 'ok' serves; 'fail' answers 500; 'hang' never answers; 'garbage' answers non-JSON. */
  mode: 'ok' | 'fail' | 'hang' | 'garbage';
  /** Overrides the next link of searches (e.g. to point off the base). */
  nextLink?: string;
  /** Authorization header values answered with 401. */
  rejected: Set<string>;
  close(): Promise<void>;
}

function patientResource(p: FakePatient): Record<string, unknown> {
  return {
    resourceType: 'Patient',
    id: p.id,
    name: [{ use: 'official', family: p.family, given: [p.given] }],
    birthDate: p.birthDate,
    ...(p.mrn ? { identifier: [{ system: 'urn:mrn', type: { text: 'MRN' }, value: p.mrn }] } : {}),
  };
}

function encounterResource(e: FakeEncounter): Record<string, unknown> {
  return {
    resourceType: 'Encounter',
    id: e.id,
    status: e.status ?? 'finished',
    class: { code: 'AMB', display: 'ambulatory' },
    type: [{ text: e.type }],
    subject: { reference: `Patient/${e.patient}` },
    period: { start: e.start },
  };
}

export async function startFakeFhir(): Promise<FakeFhir> {
  const hanging = new Set<ServerResponse>();
  const fake: FakeFhir = {
    base: '',
    requests: [],
    patients: [],
    encounters: [],
    mode: 'ok',
    rejected: new Set(),
    close: async () => {},
  };

  function bundle(base: string, resources: Record<string, unknown>[], url: URL): Record<string, unknown> {
    const count = Number(url.searchParams.get('_count') ?? 10);
    const offset = Number(url.searchParams.get('_offset') ?? 0);
    const page = resources.slice(offset, offset + count);
    const link: Array<{ relation: string; url: string }> = [
      { relation: 'self', url: `${base}${url.pathname.slice('/fhir'.length)}${url.search}` },
    ];
    if (offset + count < resources.length) {
      const next = new URL(url.href);
      next.searchParams.set('_offset', String(offset + count));
      link.push({ relation: 'next', url: fake.nextLink ?? `${base}${next.pathname.slice('/fhir'.length)}${next.search}` });
    }
    return {
      resourceType: 'Bundle',
      type: 'searchset',
      total: resources.length,
      link,
      entry: page.map((resource) => ({ resource, search: { mode: 'match' } })),
    };
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', fake.base);
    fake.requests.push({ path: `${url.pathname}${url.search}`, authorization: req.headers.authorization });
    if (fake.rejected.has(req.headers.authorization ?? '')) {
      res.writeHead(401, { 'WWW-Authenticate': 'Bearer error="invalid_token"' }).end();
      return;
    }
    if (fake.mode === 'hang') {
      hanging.add(res);
      return;
    }
    if (fake.mode === 'fail') {
      res.writeHead(500, { 'Content-Type': 'application/fhir+json' }).end(JSON.stringify({ resourceType: 'OperationOutcome' }));
      return;
    }
    if (fake.mode === 'garbage') {
      res.writeHead(200, { 'Content-Type': 'text/html' }).end('<html>maintenance</html>');
      return;
    }
    const send = (status: number, body: unknown) =>
      res.writeHead(status, { 'Content-Type': 'application/fhir+json' }).end(JSON.stringify(body));
    const path = url.pathname.replace(/^\/fhir/, '');
    const read = /^\/(Patient|Encounter)\/([^/]+)$/.exec(path);
    if (read) {
      const found = read[1] === 'Patient' ? fake.patients.find((p) => p.id === read[2]) : fake.encounters.find((e) => e.id === read[2]);
      if (!found) return void send(404, { resourceType: 'OperationOutcome' });
      return void send(200, read[1] === 'Patient' ? patientResource(found as FakePatient) : encounterResource(found as FakeEncounter));
    }
    if (path === '/Patient') {
      const name = url.searchParams.get('name')?.toLowerCase();
      const birthdate = url.searchParams.get('birthdate');
      const identifier = url.searchParams.get('identifier');
      const matches = fake.patients.filter(
        (p) =>
          (!name || `${p.given} ${p.family}`.toLowerCase().includes(name)) &&
          (!birthdate || p.birthDate.startsWith(birthdate)) &&
          (!identifier || p.mrn === identifier),
      );
      return void send(200, bundle(fake.base, matches.map(patientResource), url));
    }
    if (path === '/Encounter') {
      const patient = url.searchParams.get('patient');
      const matches = fake.encounters.filter((e) => e.patient === patient).sort((a, b) => (a.start < b.start ? 1 : -1));
      return void send(200, bundle(fake.base, matches.map(encounterResource), url));
    }
    send(404, { resourceType: 'OperationOutcome' });
  }

  const server: Server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir`;
  fake.close = async () => {
    for (const res of hanging) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return fake;
}
