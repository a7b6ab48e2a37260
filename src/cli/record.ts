// `netreplay record`: MCL datagrams from the network into a recording directory (MCL or MCAP).
import { parseSource, record as startRecording } from '../net.js';
import { choice, integer, parseCommand, seconds, text, UsageError, type Command } from './args.js';
import { MCAP_WRITE_FLAGS, mcapWriteFlags } from './output.js';

export const RECORD: Command = {
  name: 'record',
  operands: '<[Type=]url>...',
  brief: 'Record MCL datagrams into a recording directory',
  summary:
    'Record MCL datagrams arriving at each url into a new directory <dir>/<YYYYmmddTHHMMSS>_<host>, one file set per ' +
    'address (named after Type), or one MCAP file with --format mcap, until SIGINT or SIGTERM; then print a summary.',
  groups: [
    {
      heading: 'Recording',
      flags: [
        { name: 'output', short: 'o', value: 'DIR', help: 'Where the recording directory is created (required).' },
        { name: 'max-entries', value: 'N', help: 'Split each file set every N messages.' },
        { name: 'max-time', value: 'S', help: 'Split each file set every S seconds.' },
        { name: 'interface', value: 'IF', help: 'The interface to join multicast groups on.' },
      ],
    },
    {
      heading: 'Format',
      flags: [
        {
          name: 'format',
          value: 'mcl|mcap',
          help: "'mcl' (default): one MCL file set per address. 'mcap': one recording.mcap, a channel per type and topic, log time = receive time.",
        },
        ...MCAP_WRITE_FLAGS,
      ],
    },
  ],
  notes: ['Exit status: 0 done (also after Ctrl-C, which ends a recording), 1 runtime error, 2 usage.'],
};

export async function record(argv: string[], stderr: NodeJS.WritableStream): Promise<number> {
  const { values, positionals } = parseCommand(RECORD, argv);
  if (positionals.length === 0) throw new UsageError('record needs at least one <url> (udp://host:port, or Type=udp://host:port)');
  const root = text(values, 'output');
  if (root === undefined) throw new UsageError('record needs -o <dir> (where the recording directory is created)');
  const maxEntries = integer(values, 'max-entries', 1);
  const maxTime = seconds(values, 'max-time', 'positive');
  const sources = positionals.map(parseSource);
  const iface = text(values, 'interface');
  const format = choice(values, 'format', ['mcl', 'mcap'] as const);
  const mcap = mcapWriteFlags(values);
  for (const name of ['compression', 'chunk-size']) {
    if (format !== 'mcap' && text(values, name) !== undefined) throw new UsageError(`--${name} applies to --format mcap only`);
  }
  const recording = startRecording(sources, {
    ...(format !== undefined && { format }),
    ...mcap,
    root,
    ...(maxEntries !== undefined && { maxEntries }),
    ...(maxTime !== undefined && { maxTime }),
    ...(iface !== undefined && { interface: iface }),
  });
  stderr.write(
    `netreplay: recording ${sources.map((s, i) => `${s.type ?? 'None'} from udp://${recording.addresses[i]}`).join(', ')} ` +
      `into ${recording.directory}; stop with Ctrl-C\n`,
  );
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const done = () => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
  });
  const summary = recording.stop();
  const st = summary.stats;
  const lost = st.dropped + st.reassemblyDropped + summary.writeErrors;
  stderr.write(
    `netreplay: recorded ${st.messages} messages (${st.datagrams} datagrams, ${st.bytes} bytes) in ` +
      `${((performance.now() - started) / 1000).toFixed(3)} s into ${summary.directory}\n` +
      `netreplay: ${summary.files.length} file${summary.files.length === 1 ? '' : 's'}: ${summary.files.join(', ') || '-'}\n` +
      `netreplay: garbage datagrams ${st.garbage}, lost messages ${lost}` +
      `${st.lastError ? ` (last problem: ${st.lastError})` : ''}\n`,
  );
  return 0;
}
