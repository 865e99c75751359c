// The browser and real-client suite (`npm run test:e2e`): the real server as a child process,
// Debian's Chromium, fhirclient and openid-client. One file at a time: each starts its own stack
// and a browser, and the machine has two cores.
import base from './jest.config.js';

export default {
  ...base,
  testMatch: ['<rootDir>/test/e2e/**/*.e2e.ts'],
  testTimeout: 120_000,
  maxWorkers: 1,
};
