#!/usr/bin/env node
// netreplay command line: `play` logs with their timing (to stdout and/or
// UDP), `record` network traffic into a log, `info` about a log. Each
// command's flags and usage are in src/cli/.
import { NetreplayError } from './errors.js';
import { commandUsage, UsageError, type Command } from './cli/args.js';
import { PLAY, play } from './cli/play.js';
import { INFO, info } from './cli/info.js';
import { RECORD, record } from './cli/record.js';
import { CONVERT, convert } from './cli/convert.js';

const COMMANDS: Command[] = [PLAY, RECORD, INFO, CONVERT];

const USAGE = `Usage: netreplay <command> [flags]

Commands:
${COMMANDS.map((c) => `  netreplay ${c.name} ${c.operands}`.padEnd(42) + c.brief).join('\n')}

'netreplay <command> --help' lists every flag of a command.

Exit status: 0 done; 1 runtime error (unreadable or malformed log, failed
sends with --fail-on-error); 2 usage; 130 interrupted (Ctrl-C); 143 SIGTERM.`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    const command = COMMANDS.find((c) => c.name === rest[0]);
    process.stdout.write(`${command ? commandUsage(command) : USAGE}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) throw new UsageError(`unknown command '${name}'\n${USAGE}`);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${commandUsage(command)}\n`);
    return 0;
  }
  switch (command) {
    case PLAY:
      return play(rest, process.stdout, process.stderr);
    case INFO:
      return info(rest, process.stdout);
    case CONVERT:
      return convert(rest, process.stderr);
    default:
      return record(rest, process.stderr);
  }
}

// `netreplay play log | head` closes stdout early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`netreplay: ${err.message}\n`);
      process.exit(2);
    }
    const message =
      err instanceof NetreplayError || err instanceof TypeError || err instanceof RangeError
        ? err.message
        : String((err as Error)?.stack ?? err);
    process.stderr.write(`netreplay: ${message}\n`);
    process.exit(1);
  },
);
