#!/usr/bin/env node
// netreplay command line: `play` a log with its timing (to stdout and/or UDP),
// `record` network traffic into a log, `info` about a log.
import { parseArgs } from 'node:util';
import { Replay } from './replay.js';
import { openLog } from './reader.js';
import type { LoggedMessage } from './message.js';
import { NetreplayError } from './errors.js';
import { parseSource, record as startRecording, type UdpOptions, type UdpRoute } from './net.js';

const USAGE = `Usage:
  netreplay play <path> [--speed X] [--min-time S] [--max-time S] [--include-raw] [--quiet]
                 [--udp <url>] [--route <Type|@topic|Type@topic>=<url> ...] [--no-print]
      Replay a log (file, split-set prefix or recording directory) with its
      original timing, printing one line per message: time, topic, type, payload.
      --udp sends every message as MCL datagrams to <url> (udp://host:port,
      udp://[ipv6]:port, multicast too); --route sends a message type (or
      @topic) to its own address; --no-print sends without printing.
      Also: --hop-limit N, --interface IF, --mtu BYTES, --no-loop.
  netreplay record <[Type=]url> ... -o <dir> [--max-entries N] [--max-time S]
      Record MCL datagrams arriving at each url into a new directory
      <dir>/<YYYYmmddTHHMMSS>_<host>, one file set per address (named after
      Type), until SIGINT or SIGTERM; then print a summary.
  netreplay info <path> [--include-raw]
      Duration, time span and message counts per type and topic.
  netreplay --help`;

const commonOptions = {
  'min-time': { type: 'string' },
  'max-time': { type: 'string' },
  'include-raw': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function fail(message: string): never {
  process.stderr.write(`netreplay: ${message}\n`);
  process.exit(2);
}

function seconds(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) fail(`--${name} must be a number of seconds, got '${value}'`);
  return n;
}

function parseSpeed(value: string | undefined): number {
  if (value === undefined) return 1;
  const n = /^inf(inity)?$/i.test(value) ? Infinity : Number(value);
  if (value.trim() === '' || Number.isNaN(n) || n <= 0) fail(`--speed must be a number > 0 or 'inf', got '${value}'`);
  return n;
}

/** Payload as one line of JSON; binary as hex. */
function formatPayload(payload: unknown): string {
  return JSON.stringify(payload, (_key, value: unknown) =>
    value instanceof Uint8Array ? Buffer.from(value).toString('hex') : value,
  );
}

function formatLine(m: LoggedMessage): string {
  return `${m.elapsedTime.toFixed(6).padStart(12)}  ${JSON.stringify(m.topic)}  ${m.type ?? 'None'}  ${formatPayload(m.payload)}`;
}

async function play(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...commonOptions,
      speed: { type: 'string', short: 's' },
      quiet: { type: 'boolean', short: 'q' },
      udp: { type: 'string' },
      route: { type: 'string', multiple: true },
      'no-print': { type: 'boolean' },
      'hop-limit': { type: 'string' },
      interface: { type: 'string' },
      mtu: { type: 'string' },
      'no-loop': { type: 'boolean' },
    },
  });
  if (values.help) return void process.stdout.write(`${USAGE}\n`);
  const path = positionals[0] ?? fail('play needs a <path>');
  const minTime = seconds(values['min-time'], 'min-time');
  const maxTime = seconds(values['max-time'], 'max-time');
  const udp = udpOptions(values);
  const print = !values['no-print'];
  if (!print && !udp) fail('--no-print needs --udp or --route (nothing would be played)');
  const replay = new Replay(path, {
    ...(udp && { udp }),
    ...(!print && { js: false }),
    speed: parseSpeed(values.speed),
    includeRaw: values['include-raw'] ?? false,
    ...(minTime !== undefined && { minTime }),
    ...(maxTime !== undefined && { maxTime }),
  });
  let count = 0;
  const out: string[] = [];
  // Messages of one engine batch arrive in one tick: write them at once, at replay time.
  const flush = () => {
    if (out.length) process.stdout.write(`${out.splice(0).join('\n')}\n`);
  };
  replay.on('message', (m) => {
    count++;
    if (values.quiet) return;
    if (out.push(formatLine(m)) === 1) queueMicrotask(flush);
  });
  const interrupt = () => replay.stop();
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  const started = performance.now();
  replay.start();
  try {
    await replay.done;
  } finally {
    flush();
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    const s = replay.stats();
    const us = (x: number) => (x * 1e6).toFixed(1);
    if (!print) count = s.delivered;
    process.stderr.write(
      `netreplay: ${count} messages in ${((performance.now() - started) / 1000).toFixed(3)} s; ` +
        `handover lateness p50 ${us(s.handoverLateness.p50)} µs, p99 ${us(s.handoverLateness.p99)} µs, max ${us(s.handoverLateness.max)} µs\n`,
    );
    const u = replay.udpStats();
    if (u) {
      const kinds = Object.entries(u.failures)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${k} ${n}`);
      process.stderr.write(
        `netreplay: udp: ${u.recordsSent}/${u.records} messages sent as ${u.datagrams} datagrams (${u.bytes} bytes` +
          `${u.fragmented ? `, ${u.fragmented} fragmented` : ''}${u.unrouted ? `, ${u.unrouted} unrouted` : ''}); ` +
          `send lateness p50 ${us(u.lateness.p50)} µs, p99 ${us(u.lateness.p99)} µs, max ${us(u.lateness.max)} µs; ` +
          `failures: ${kinds.length ? kinds.join(', ') : 'none'}${u.lastError ? ` (last: ${u.lastError})` : ''}\n`,
      );
    }
    replay.close();
  }
}

function integer(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) fail(`--${name} must be a whole number, got '${value}'`);
  return n;
}

/** `Type=url`, `@topic=url` or `Type@topic=url`. */
function parseRoute(text: string): UdpRoute {
  const eq = text.indexOf('=');
  if (eq <= 0 || eq === text.length - 1) fail(`--route must be <Type|@topic|Type@topic>=<url>, got '${text}'`);
  const key = text.slice(0, eq);
  const destination = text.slice(eq + 1);
  const at = key.indexOf('@');
  if (at < 0) return { type: key, destination };
  const type = key.slice(0, at);
  return { ...(type && { type }), topic: key.slice(at + 1), destination };
}

function udpOptions(values: {
  udp?: string | undefined;
  route?: string[] | undefined;
  'hop-limit'?: string | undefined;
  interface?: string | undefined;
  mtu?: string | undefined;
  'no-loop'?: boolean | undefined;
}): UdpOptions | undefined {
  const routes = (values.route ?? []).map(parseRoute);
  if (values.udp === undefined && routes.length === 0) {
    for (const flag of ['hop-limit', 'interface', 'mtu', 'no-loop'] as const) {
      if (values[flag] !== undefined) fail(`--${flag} needs --udp or --route`);
    }
    return undefined;
  }
  const hopLimit = integer(values['hop-limit'], 'hop-limit');
  const mtu = integer(values.mtu, 'mtu');
  return {
    ...(values.udp !== undefined && { destination: values.udp }),
    ...(routes.length > 0 && { routes }),
    ...(hopLimit !== undefined && { hopLimit }),
    ...(mtu !== undefined && { mtu }),
    ...(values.interface !== undefined && { interface: values.interface }),
    ...(values['no-loop'] && { multicastLoop: false }),
  };
}

async function record(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      output: { type: 'string', short: 'o' },
      'max-entries': { type: 'string' },
      'max-time': { type: 'string' },
      interface: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return void process.stdout.write(`${USAGE}\n`);
  if (positionals.length === 0) fail('record needs at least one <url> (udp://host:port, or Type=udp://host:port)');
  const root = values.output ?? fail('record needs -o <dir> (where the recording directory is created)');
  const maxEntries = integer(values['max-entries'], 'max-entries');
  if (maxEntries === 0) fail('--max-entries must be at least 1');
  const maxTime = seconds(values['max-time'], 'max-time');
  if (maxTime !== undefined && maxTime <= 0) fail('--max-time must be > 0');
  const sources = positionals.map(parseSource);
  const recording = startRecording(sources, {
    root,
    ...(maxEntries !== undefined && { maxEntries }),
    ...(maxTime !== undefined && { maxTime }),
    ...(values.interface !== undefined && { interface: values.interface }),
  });
  process.stderr.write(
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
  process.stderr.write(
    `netreplay: recorded ${st.messages} messages (${st.datagrams} datagrams, ${st.bytes} bytes) in ` +
      `${((performance.now() - started) / 1000).toFixed(3)} s into ${summary.directory}\n` +
      `netreplay: ${summary.files.length} file${summary.files.length === 1 ? '' : 's'}: ${summary.files.join(', ') || '-'}\n` +
      `netreplay: garbage datagrams ${st.garbage}, lost messages ${lost}` +
      `${st.lastError ? ` (last problem: ${st.lastError})` : ''}\n`,
  );
}

function info(args: string[]): void {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: commonOptions });
  if (values.help) return void process.stdout.write(`${USAGE}\n`);
  const path = positionals[0] ?? fail('info needs a <path>');
  const reader = openLog(path, { includeRaw: values['include-raw'] ?? false });
  const counts = new Map<string, number>();
  let first = Infinity;
  let last = -Infinity;
  let total = 0;
  for (let m = reader.read(); m !== null; m = reader.read()) {
    total++;
    first = Math.min(first, m.elapsedTime);
    last = Math.max(last, m.elapsedTime);
    const key = `${m.type ?? 'None'}\t${JSON.stringify(m.topic)}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const header = reader.header;
  const lines = [
    `path:      ${path}`,
    `created:   ${header?.created ?? '-'}`,
    `version:   ${header?.version ?? '-'}`,
    `streams:   ${reader.streams.map((s) => `${s.type ?? 'None'} (${s.files.length} file${s.files.length === 1 ? '' : 's'})`).join(', ') || '-'}`,
    `messages:  ${total}`,
    `time span: ${total ? `${first.toFixed(6)} s .. ${last.toFixed(6)} s` : '-'}`,
    `duration:  ${total ? (last - first).toFixed(6) : '0'} s`,
    'count per type and topic:',
    ...[...counts].map(([key, n]) => `  ${String(n).padStart(10)}  ${key.replace('\t', '  ')}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'play':
      return play(rest);
    case 'info':
      return info(rest);
    case 'record':
      return record(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return;
    default:
      fail(`unknown command '${command}'\n${USAGE}`);
  }
}

// `netreplay play log | head` closes stdout early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

main(process.argv.slice(2)).catch((err: unknown) => {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) fail(`${(err as Error).message}\n${USAGE}`);
  const message =
    err instanceof NetreplayError || err instanceof TypeError || err instanceof RangeError
      ? err.message
      : String((err as Error)?.stack ?? err);
  process.stderr.write(`netreplay: ${message}\n`);
  process.exit(1);
});
