/**
 * The architecture, enforced (`npm run lint:layers`, part of `npm test`). docs/architecture.md
 * explains it.
 *
 * src/ is cut into layers, lowest first. A module may import its own layer and the layers below,
 * never one above. Inside a layer the sibling folders are ordered the same way, so two folders never
 * import each other; and no module is part of an import cycle.
 */
const LAYERS = [
  ['domain', ['fhir', 'scim', 'scopes', 'hcs', 'authn']],
  ['platform', ['config', 'ops', 'redis', 'storage', 'keys', 'http']],
  ['records', ['directory', 'audit', 'consent']],
  ['oauth', ['paths.ts', 'clients', 'provider', 'tokens', 'backend', 'introspection', 'userinfo']],
  ['smart', ['launch', 'interaction', 'discovery']],
  ['apis', ['fhir-api.ts', 'audit', 'consent', 'scim', 'manage']],
  ['app', []],
  ['cli', []],
  ['main.ts', []],
];

const literal = (s) => s.replace(/[.]/g, '\\.');
const path = (layer, unit) => `^src/${literal(layer)}${unit ? `/${literal(unit)}` : ''}(/|$)`;

const forbidden = [
  {
    name: 'no-cycle',
    comment: 'An import cycle hides which module owns what; break it by moving the shared part down.',
    severity: 'error',
    from: {},
    to: { circular: true },
  },
];

LAYERS.forEach(([layer, units], i) => {
  const above = LAYERS.slice(i + 1).map(([name]) => name);
  if (above.length) {
    forbidden.push({
      name: `layer-${layer.replace('.ts', '')}`,
      comment: `src/${layer} is below ${above.join(', ')} and may not import from them.`,
      severity: 'error',
      from: { path: path(layer) },
      to: { path: above.map((name) => path(name)) },
    });
  }
  units.forEach((unit, j) => {
    const later = units.slice(j + 1);
    if (!later.length) return;
    forbidden.push({
      name: `order-${layer}-${unit.replace('.ts', '')}`,
      comment: `In src/${layer}, ${unit} comes before ${later.join(', ')} and may not import from them.`,
      severity: 'error',
      from: { path: path(layer, unit) },
      to: { path: later.map((u) => path(layer, u)) },
    });
  });
});

module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
