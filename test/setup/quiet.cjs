// oidc-provider warns once per import that Node 20 is unsupported upstream; CI runs Node 22 too,
// so the warning is known and only hides real output here.
const warn = console.warn.bind(console);
console.warn = (...args) => {
  if (typeof args[0] === 'string' && args[0].includes('Unsupported runtime')) return;
  warn(...args);
};
