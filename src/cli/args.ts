import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliUsageError } from './errors.js';

/** node:util parseArgs, strict, with its errors and stray arguments as usage errors. */
export function parseCommandArgs<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, positionals: number) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: positionals > 0, strict: true });
  } catch (err) {
    throw new CliUsageError((err as Error).message);
  }
  if (parsed.positionals.length > positionals) throw new CliUsageError(`unexpected argument "${parsed.positionals[positionals]}"`);
  return parsed;
}

/** The first positional argument, or a usage error saying which command needs it. */
export function requirePositional(positionals: string[], command: string, what: string): string {
  const value = positionals[0];
  if (!value) throw new CliUsageError(`${command} needs ${what}`);
  return value;
}
