import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['node_modules/', 'coverage/', 'var/', 'dist/', 'test-results/', '.jest-results.json'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': ['error', { allow: ['error'] }],
    },
  },
  { files: ['test/**', 'bench/**', 'bin/**', 'src/cli/**', 'examples/**', '**/*.cjs', '**/*.js'], rules: { 'no-console': 'off' } },
  // The example SMART app's pages run in the browser with fhirclient's global `FHIR`.
  {
    files: ['examples/smart-app/public/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser, FHIR: 'readonly' } },
  },
  // The server's own pages run one script: WebAuthn glue over @simplewebauthn/browser's global.
  { files: ['views/static/**/*.js'], languageOptions: { sourceType: 'script', globals: { ...globals.browser } } },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { ...globals.node } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
