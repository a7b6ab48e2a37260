#!/usr/bin/env node
// netreplay command line: `play` a log with its timing, `info` about a log.
import { statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Replay } from './replay.js';
import { ReadDirectory, ReadFile } from './reader.js';
import type { LoggedMessage } from './message.js';
import { NetreplayError } from './errors.js';

const USAGE = `Usage:
  netreplay play <path> [--speed X] [--min-time S] [--max-time S] [--include-raw] [--quiet]
      Replay a log (file, split-set prefix or recording directory) with its
      original timing, printing one line per message: time, topic, type, payload.
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

function openReader(path: string, includeRaw: boolean): ReadFile | ReadDirectory {
  let dir = false;
  try {
    dir = statSync(path).isDirectory();
  } catch {
    // A split-set prefix: ReadFile resolves it or says why not.
  }
  return dir ? new ReadDirectory(path, { includeRaw }) : new ReadFile(path);
}

async function play(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...commonOptions, speed: { type: 'string', short: 's' }, quiet: { type: 'boolean', short: 'q' } },
  });
  if (values.help) return void process.stdout.write(`${USAGE}\n`);
  const path = positionals[0] ?? fail('play needs a <path>');
  const minTime = seconds(values['min-time'], 'min-time');
  const maxTime = seconds(values['max-time'], 'max-time');
  const replay = new Replay(path, {
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
  const started = performance.now();
  replay.start();
  try {
    await replay.done;
  } finally {
    flush();
    process.off('SIGINT', interrupt);
    const s = replay.stats();
    const us = (x: number) => (x * 1e6).toFixed(1);
    process.stderr.write(
      `netreplay: ${count} messages in ${((performance.now() - started) / 1000).toFixed(3)} s; ` +
        `handover lateness p50 ${us(s.lateness.p50)} µs, p99 ${us(s.lateness.p99)} µs, max ${us(s.lateness.max)} µs\n`,
    );
    replay.close();
  }
}

function info(args: string[]): void {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: commonOptions });
  if (values.help) return void process.stdout.write(`${USAGE}\n`);
  const path = positionals[0] ?? fail('info needs a <path>');
  const reader = openReader(path, values['include-raw'] ?? false);
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
