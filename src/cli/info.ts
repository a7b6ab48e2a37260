// `netreplay info`: what a log holds, per type and topic.
import { summarizeLog, type LogSummary } from '../summary.js';
import { flag, parseCommand, UsageError, type Command } from './args.js';
import { CAPTURE_FILTER_FLAGS, captureFilterFlags, MCAP_READ_FLAGS, mcapReadFlags, READ_FLAGS, readWindowFlags } from './output.js';

export const INFO: Command = {
  name: 'info',
  operands: '<path>...',
  brief: 'What a log holds, per type and topic',
  summary:
    'Per type and topic: message count, first and last time, mean rate, largest gap, bytes in all and per message; ' +
    'the files read (split parts too). Reads the logs natively without decoding payloads; several paths are read as one.',
  groups: [
    {
      heading: 'Reading',
      flags: [...READ_FLAGS, { name: 'json', help: 'Print the summary as one JSON object.' }],
    },
    { heading: 'Captures (pcap, pcapng)', flags: CAPTURE_FILTER_FLAGS },
    { heading: 'MCAP', flags: MCAP_READ_FLAGS },
  ],
  notes: ['Exit status: 0 done, 1 unreadable or malformed log, 2 usage.'],
};

function bytesText(n: number): string {
  if (n < 1e3) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

function table(rows: string[][], rightAligned: boolean[]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => `  ${r.map((cell, c) => (rightAligned[c] ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd()}`);
}

/** When elapsed time 0 was, for inputs with absolute times (MCAP, captures). */
function startLine(s: LogSummary): string[] {
  const base = s.streams.find((st) => st.timeBaseNs !== null)?.timeBaseNs;
  if (base === undefined || base === null) return [];
  const ms = Number(base / 1_000_000n);
  const ns = String(base % 1_000_000_000n).padStart(9, '0');
  return [`start:     ${new Date(ms).toISOString().slice(0, 19)}.${ns}Z (${base} ns since the epoch)`];
}

export function formatSummary(paths: string[], s: LogSummary, seconds: number): string {
  const span = s.firstTime === null || s.lastTime === null ? null : [s.firstTime, s.lastTime];
  const lines = [
    `path:      ${paths.join(', ')}`,
    `created:   ${s.streams[0]?.created ?? '-'}`,
    `version:   ${s.streams[0]?.version ?? '-'}`,
    `streams:   ${s.streams.map((st) => `${st.type ?? 'None'}${st.encoding === 'msgpack' ? '' : ` [${st.encoding}]`} (${st.files.length} file${st.files.length === 1 ? '' : 's'})`).join(', ') || '-'}`,
    ...startLine(s),
    ...s.streams.flatMap((st) => st.files.map((f) => `  ${st.type ?? 'None'}: ${f}`)),
    `messages:  ${s.count}${s.skipped ? ` (${s.skipped} malformed skipped)` : ''}`,
    `bytes:     ${bytesText(s.bytes)}`,
    `time span: ${span ? `${span[0]!.toFixed(6)} s .. ${span[1]!.toFixed(6)} s` : '-'}`,
    `duration:  ${span ? (span[1]! - span[0]!).toFixed(6) : '0'} s`,
    'per type and topic:',
  ];
  if (s.topics.length) {
    const header = ['count', 'type', 'topic', 'first s', 'last s', 'rate Hz', 'largest gap s', 'bytes', 'mean bytes'];
    const rows = s.topics.map((t) => [
      String(t.count),
      t.type ?? 'None',
      JSON.stringify(t.topic),
      t.firstTime.toFixed(6),
      t.lastTime.toFixed(6),
      t.rate === null ? '-' : t.rate.toFixed(3),
      t.largestGap.toFixed(6),
      bytesText(t.bytes),
      t.meanBytes.toFixed(1),
    ]);
    lines.push(...table([header, ...rows], [true, false, false, true, true, true, true, true, true]));
  }
  for (const c of s.captures) {
    const n = c.counts;
    const skips = Object.entries({ 'not UDP': n.notUdp, fragments: n.fragments, truncated: n.truncated, malformed: n.malformed, 'link type': n.linkType, untimed: n.untimed })
      .filter(([, k]) => k > 0)
      .map(([why, k]) => `${k} ${why}`);
    lines.push(
      `capture:   ${c.file} (${c.format}): ${n.frames} frames, ${n.datagrams} UDP datagrams${n.filtered ? `, ${n.filtered} filtered out` : ''}` +
        `${skips.length ? `; skipped: ${skips.join(', ')}` : ''}`,
      `  started: ${c.baseNs === null ? '-' : new Date(Number(c.baseNs / 1_000_000n)).toISOString()} (${c.baseNs ?? '-'} ns since the epoch)`,
      `  destinations: ${c.destinations.join(', ') || '-'}`,
      ...(c.damage ? [`  damaged: ${c.damage}`] : []),
    );
  }
  lines.push(`read in:   ${seconds.toFixed(3)} s`);
  return lines.join('\n');
}

export function info(argv: string[], stdout: NodeJS.WritableStream): number {
  const { values, positionals } = parseCommand(INFO, argv);
  if (positionals.length === 0) throw new UsageError('info needs at least one <path>');
  const window = { ...readWindowFlags(values), ...captureFilterFlags(values), ...mcapReadFlags(values) };
  const started = performance.now();
  const summary = summarizeLog(positionals.length === 1 ? positionals[0]! : positionals, window);
  const took = (performance.now() - started) / 1000;
  stdout.write(flag(values, 'json') ? `${JSON.stringify({ paths: positionals, ...summary, readSeconds: took }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n` : `${formatSummary(positionals, summary, took)}\n`);
  return 0;
}
