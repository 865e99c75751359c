// Jest runs each test file in a vm context, but `structuredClone` comes from the host realm, so the
// objects it returns fail oidc-provider's `value.constructor === Object` plain-object check (static
// clients with `jwks` are then rejected as "client JSON Web Key Set is invalid"). Re-home the clone
// into this realm. Production code never runs in a vm context and is unaffected.
const hostClone = globalThis.structuredClone;

function rehome(value) {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(rehome);
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return value;
  const proto = Object.getPrototypeOf(value);
  if (proto === null || proto.constructor?.name === 'Object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = rehome(v);
    return out;
  }
  if (value.constructor?.name === 'Map') return new Map([...value].map(([k, v]) => [rehome(k), rehome(v)]));
  if (value.constructor?.name === 'Set') return new Set([...value].map(rehome));
  if (value.constructor?.name === 'Date') return new Date(value.getTime());
  return value;
}

globalThis.structuredClone = (value, options) => rehome(hostClone(value, options));
