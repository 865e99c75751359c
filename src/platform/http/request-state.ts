/**
 * What one request learns in one place and needs again in a later one: the single owner of
 * per-request state.
 *
 * Where it lives: in a WeakMap keyed by the request's Koa context. oidc-provider is itself the Koa
 * application (app/app.ts), so the context our middleware sees is the very object oidc-provider
 * hands to its hooks in the same request: `extraTokenClaims` (through its AsyncLocalStorage, whose
 * store is that context), the client-assertion hook, the interaction policy's checks and its
 * events. A fact noted in one of them is found by the next.
 *
 * Lifetime: Koa makes a new context for every request, so the state is created empty at its first
 * use in a request (there is no middleware to install and no order to get right), seen by
 * everything later in that request, never by another request, and collected with the context. A
 * WeakMap rather than a property of `ctx.state`: nothing else can overwrite or enumerate it, and
 * hooks that receive a loosely typed context need nothing of it but its identity.
 *
 * Typing: `RequestState` is empty here; each feature declares its own facts by declaration
 * merging, the way Koa lets applications type `ctx.state`, next to the code that writes them:
 *
 *   declare module '../../platform/http/request-state.js' {
 *     interface RequestState {
 *       // What it is, who writes it, who reads it.
 *       b2bAssertion?: B2bAssertion;
 *     }
 *   }
 *
 * so this layer never imports the layers above it, and every fact is optional (absent until its
 * writer ran). Searching for `interface RequestState` lists all of them.
 */

// Filled in by the features (declaration merging), as described above.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface RequestState {}

const states = new WeakMap<object, RequestState>();

/** The state of the request `ctx` belongs to, created empty on first use. */
export function requestState(ctx: object): RequestState {
  let state = states.get(ctx);
  if (!state) {
    state = {};
    states.set(ctx, state);
  }
  return state;
}
