import { pino, type Logger } from 'pino';

/**
 * Structured JSON logs. Anything that may carry a credential is redacted at the logger so a
 * careless `log.info({ req })` cannot leak it; request logs never include the query string
 * (authorization codes, tokens and `state` travel there).
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.password',
  '*.client_secret',
  '*.clientSecret',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.code',
  '*.code_verifier',
  '*.client_assertion',
  '*.token',
  '*.d',
  '*.privateJwk',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'smart-authz' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

/**
 * Standard output written synchronously: for a process that logs little and ends with
 * `process.exit` (the workers' supervisor), whose last lines an asynchronous write still in
 * flight at exit could lose.
 */
export const syncStdout = (): pino.DestinationStream => pino.destination({ dest: 1, sync: true });

export type { Logger };
