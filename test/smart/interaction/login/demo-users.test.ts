import { createTestApp, type TestApp } from '../../../support/test-app.js';
import { createLogger } from '../../../../src/platform/ops/logger.js';
import { DEMO, seedDemoData } from '../../../../src/app/demo-seed.js';
import { verifyPassword } from '../../../../src/records/directory/passwords.js';
import { ENTERPRISE_USER_SCHEMA, SMART_USER_SCHEMA } from '../../../../src/records/directory/model.js';
import { directoryOf } from './support.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

test('demo users are seeded once, with their documented passwords, and never rehashed', async () => {
  const logged: string[] = [];
  const logger = createLogger('info', { write: (line: string) => void logged.push(line) });
  const seed = () => seedDemoData({ config: t.config, registry: t.registry, redis: t.redis, keyspace: t.keyspace, logger });
  await seed();
  const { users } = directoryOf(t);
  const hashes: Record<string, string> = {};
  for (const [userName, password] of Object.entries(DEMO.users)) {
    const found = (await users.credentials(userName))!;
    expect(found.user.active).toBe(true);
    expect(await verifyPassword(found.passwordHash!, password)).toBe(true);
    hashes[userName] = found.passwordHash!;
  }

  const smith = (await users.findByUserName('dr.smith'))![SMART_USER_SCHEMA]!;
  expect(smith.fhirUser).toMatch(/^Practitioner\//);
  expect(smith.roles?.length).toBeGreaterThan(0);
  // What the HCS claims of the demo clinician's tokens are made of (hcs/).
  expect(smith).toMatchObject({ purposesOfUse: ['TREAT'], npi: '1234567893', breakTheGlass: true });
  expect((await users.findByUserName('dr.smith'))![ENTERPRISE_USER_SCHEMA]).toEqual({ organization: 'Demo General Hospital' });
  expect((await users.findByUserName('pat.jones'))![SMART_USER_SCHEMA]!.fhirUser).toMatch(/^Patient\//);
  const carer = (await users.findByUserName('care.jones'))![SMART_USER_SCHEMA]!;
  expect(carer.fhirUser).toMatch(/^RelatedPerson\//);
  expect(carer.proxyPatients).toEqual([
    { value: 'Patient/pat-jones', display: 'Pat Jones' },
    { value: 'Patient/sam-jones', display: 'Sam Jones' },
  ]);

  // A restart: nothing is recreated and no hash changes, even after an administrator's change.
  await users.setActive((await users.findByUserName('pat.jones'))!.id, false);
  await seed();
  expect(await users.count()).toBe(3);
  for (const userName of Object.keys(DEMO.users)) expect((await users.credentials(userName))!.passwordHash).toBe(hashes[userName]);
  expect((await users.findByUserName('pat.jones'))!.active).toBe(false);
  expect(logged.at(-1)).toContain('"users":["dr.smith:unchanged","pat.jones:unchanged","care.jones:unchanged"]');
  for (const password of Object.values(DEMO.users)) expect(logged.join('')).not.toContain(password);
});
