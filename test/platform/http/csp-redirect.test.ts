import { createTestApp, type TestApp } from '../../support/test-app.js';
import { browse, startAuthorization } from '../../support/smart-flow.js';
import { registerSmartApp } from '../../support/fixtures.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
  await registerSmartApp(t, { id: 'csp-web', redirectUri: 'https://app.example.org/cb', scopes: ['openid', 'fhirUser', 'patient/*.rs'] });
  await registerSmartApp(t, {
    id: 'csp-native',
    redirectUri: 'org.example.app:/callback',
    scopes: ['openid', 'fhirUser', 'patient/*.rs'],
    metadata: { application_type: 'native' },
  });
});
afterAll(() => t.close());

// Browsers apply form-action to the redirects after a form post: a sign-in or consent page whose
// CSP allowed only 'self' could never send the browser back to the app.
describe('CSP form-action on interaction pages', () => {
  test.each([
    ['csp-web', 'https://app.example.org/cb', "form-action 'self' https://app.example.org;"],
    ['csp-native', 'org.example.app:/callback', "form-action 'self' org.example.app:;"],
  ])('the %s sign-in page allows exactly its redirect target', async (client_id, redirect_uri, expected) => {
    const { agent, first } = await startAuthorization(t, {
      client_id,
      redirect_uri,
      scope: 'openid fhirUser',
      aud: 'http://localhost:8080/fhir',
    });
    const stop = await browse(agent, first);
    expect(stop.kind).toBe('page');
    const csp = stop.res.headers['content-security-policy'] as string;
    expect(csp).toContain(expected);
    expect(csp).toContain("default-src 'none'");
  });

  test('other pages keep form-action to this origin only', async () => {
    const res = await t.request.get('/healthz');
    expect(res.headers['content-security-policy']).toContain("form-action 'self';");
  });
});
