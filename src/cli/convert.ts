// `netreplay convert`: MCL logs to MCAP and back.
import { convert as convertLog } from '../mcap.js';
import { choice, parseCommand, UsageError, type Command } from './args.js';
import { MCAP_WRITE_FLAGS, mcapWriteFlags } from './output.js';

export const CONVERT: Command = {
  name: 'convert',
  operands: '<input> <output>',
  brief: 'Convert a log between MCL and MCAP',
  summary:
    'An MCL log (file, split-set prefix or recording directory) to MCAP when <output> ends in .mcap: one channel per ' +
    'type and topic, schema name = type, encoding msgpack, payload bytes and times exact. An MCAP file to MCL otherwise ' +
    '(msgpack channels only): <output> is a .log file for one type, else a recording directory. A file converted from ' +
    'MCL converts back to the same log.',
  groups: [
    {
      heading: 'Writing',
      flags: [
        ...MCAP_WRITE_FLAGS,
        { name: 'on-error', value: 'fail|skip', help: "A malformed input record: 'fail' (default: exit 1 naming it) or 'skip' (count it)." },
      ],
    },
  ],
  notes: ['Exit status: 0 done, 1 unreadable, malformed or unconvertible input, 2 usage.'],
};

export async function convert(argv: string[], stderr: NodeJS.WritableStream): Promise<number> {
  const { values, positionals } = parseCommand(CONVERT, argv);
  if (positionals.length !== 2) {
    throw new UsageError(`convert needs <input> and <output>, got ${positionals.length} path${positionals.length === 1 ? '' : 's'}`);
  }
  const [input, output] = positionals as [string, string];
  const onError = choice(values, 'on-error', ['fail', 'skip'] as const);
  const started = performance.now();
  const summary = await convertLog(input, output, { ...mcapWriteFlags(values), ...(onError !== undefined && { onError }) });
  stderr.write(
    `netreplay: converted ${summary.messages} messages in ${((performance.now() - started) / 1000).toFixed(3)} s` +
      `${summary.skipped ? ` (${summary.skipped} malformed skipped)` : ''} into ${summary.files.join(', ')}\n`,
  );
  return 0;
}
