import { startResourceServer } from './resource-server.js';

/**
 * `npm run example:fhir`: the example FHIR server on http://localhost:8080/fhir, the FHIR base
 * `npm start` expects by default (AUTHZ_FHIR_SERVERS), introspecting as the demo resource server.
 */
const issuer = process.env.AUTHZ_ISSUER ?? 'http://localhost:3000';
const running = await startResourceServer({
  issuer,
  clientId: process.env.FHIR_CLIENT_ID ?? 'demo-fhir-server',
  clientSecret: process.env.FHIR_CLIENT_SECRET ?? 'demo-fhir-server-secret',
  port: Number(process.env.FHIR_PORT ?? 8080),
  host: process.env.FHIR_HOST ?? '127.0.0.1',
  ...(process.env.FHIR_BASE ? { publicBase: process.env.FHIR_BASE } : {}),
  onRequest: (l) => console.log(`${l.method} ${l.path} → ${l.status}${l.client ? ` (${l.client})` : ''}`),
});
console.log(`example FHIR server at ${running.base} (tokens checked at ${issuer}/introspect)`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void running.close().then(() => process.exit(0)));
