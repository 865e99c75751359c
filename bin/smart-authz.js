#!/usr/bin/env node
// Admin CLI. Runs the TypeScript sources directly through tsx, like `npm start` does.
import { register } from 'tsx/esm/api';

register();
const { cliMain } = await import('../src/cli/main.ts');
cliMain(process.argv.slice(2));
