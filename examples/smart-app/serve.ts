import { startAppServer } from './app-server.js';

/**
 * `npm run example:app`: the example SMART app on http://localhost:4000 as the seeded `demo-app`
 * client (launch URL /launch, redirect URI /callback), against `npm start` and
 * `npm run example:fhir` on their default ports.
 */
const issuer = process.env.AUTHZ_ISSUER ?? 'http://localhost:3000';
const fhirBase = process.env.FHIR_BASE ?? 'http://localhost:8080/fhir';
const app = await startAppServer({
  clientId: process.env.APP_CLIENT_ID ?? 'demo-app',
  fhirBase,
  connectTo: [issuer, fhirBase],
  port: Number(process.env.APP_PORT ?? 4000),
  host: process.env.APP_HOST ?? '127.0.0.1',
});
console.log(`example SMART app at ${app.origin}/ (standalone launch: ${app.origin}/launch)`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void app.close().then(() => process.exit(0)));
