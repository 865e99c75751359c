import type Provider from 'oidc-provider';
import { createServices, type AppDeps } from './services.js';
import { createProvider } from './provider.js';
import { httpPipeline } from './pipeline.js';

/**
 * The whole HTTP surface, in three steps: the service graph (app/services.ts), oidc-provider
 * adapted to it (app/provider.ts), and the HTTP pipeline in front of the provider's own endpoints
 * (app/pipeline.ts).
 */
export function buildApp(deps: AppDeps): Provider {
  // Services that reach back into the provider (consents, pickers) call this only once requests flow.
  const services = createServices(deps, () => provider);
  const provider = createProvider(services);
  for (const step of httpPipeline(services, provider)) provider.use(step.middleware);
  return provider;
}
