import { runCli } from '../../src/cli/main.js';

/** Runs the admin CLI in-process (configuration from process.env) and returns what it printed, line by line. */
export async function cliLines(...argv: string[]): Promise<string[]> {
  const lines: string[] = [];
  await runCli(argv, (line) => lines.push(line));
  return lines;
}
