// What the commands share: how a message is printed, and the flags that
// bound what is read of a log or how an MCAP file is written.
import type { LoggedMessage, Message } from '../message.js';
import type { ReadDirectoryOptions } from '../reader.js';
import type { PcapFilterOptions } from '../pcap.js';
import type { McapInputOptions } from '../inputs.js';
import { choice, flag, integer, list, seconds, text, UsageError, type Flag, type Values } from './args.js';

/**
 * Payload bytes (Uint8Array fields) are printed as hex strings, bigints as
 * decimal strings. The holder's own value is looked at: a Buffer's toJSON
 * has already turned `value` into `{ type, data }`.
 */
function jsonReplacer(this: unknown, key: string, value: unknown): unknown {
  const original = (this as Record<string, unknown>)[key];
  if (original instanceof Uint8Array) return Buffer.from(original).toString('hex');
  return typeof value === 'bigint' ? value.toString() : value;
}

/** What is printed of a payload: decoded, or its bytes as hex when it is not decoded (a capture's datagrams). */
function shown(m: LoggedMessage): unknown {
  return m.payload === undefined && m.payloadBytes ? Buffer.from(m.payloadBytes).toString('hex') : m.payload;
}

/** time, topic, type and payload on one line (the payload as JSON; a capture's bytes as hex). */
export function formatLine(m: LoggedMessage): string {
  return `${m.elapsedTime.toFixed(6).padStart(12)}  ${JSON.stringify(m.topic)}  ${m.type ?? 'None'}  ${JSON.stringify(shown(m), jsonReplacer)}`;
}

/** One NDJSON object; `timeNs` (a string of epoch ns) and `encoding` for MCAP and captures. */
export function formatJson(m: Message): string {
  return JSON.stringify(
    {
      time: m.elapsedTime,
      ...(m.timeNs !== undefined && { timeNs: m.timeNs }),
      topic: m.topic,
      type: m.type,
      ...(m.encoding !== undefined && { encoding: m.encoding }),
      payload: shown(m),
      lateness: m.lateness,
      pass: m.pass,
      backfill: m.backfill,
    },
    jsonReplacer,
  );
}

export const READ_FLAGS: Flag[] = [
  { name: 'min-time', value: 'S', help: 'Read no message logged before S seconds (elapsed time).' },
  { name: 'max-time', value: 'S', help: 'Read no message logged after S seconds.' },
  { name: 'include-raw', help: 'Also read raw streams (header >>> None) of a recording directory.' },
  { name: 'on-error', value: 'fail|skip', help: "A malformed record: 'fail' (default: exit 1 naming file and line) or 'skip' (count it)." },
];

/** What is read of a capture (pcap, pcapng): the filters pushed into its reader. */
export const CAPTURE_FILTER_FLAGS: Flag[] = [
  {
    name: 'filter',
    value: 'EXPR',
    help: "Captures: only the UDP datagrams this BPF-style expression keeps: udp, ip, ip6, [src|dst] host ADDR, [src|dst] port N, portrange A-B, and/or/not, parentheses ('udp dst port 26000 and src host 10.0.0.1').",
  },
  { name: 'dst-port', value: 'N', multiple: true, help: 'Captures: only datagrams to this destination port (repeat for several).' },
  { name: 'src', value: 'ADDR', help: 'Captures: only datagrams from this source, IP or ip:port ([v6]:port).' },
];

/** How MCAP files are read. */
export const MCAP_READ_FLAGS: Flag[] = [
  {
    name: 'timestamp',
    value: 'log|publish',
    help: "MCAP: play by each message's log time (default: when recorded) or publish time (when sent; reordered within 0.5 s).",
  },
];

export function mcapReadFlags(values: Values): McapInputOptions {
  const timestamp = choice(values, 'timestamp', ['log', 'publish'] as const);
  return timestamp === undefined ? {} : { timestamp };
}

/** How an MCAP file is written (`record --format mcap`, `convert`). */
export const MCAP_WRITE_FLAGS: Flag[] = [
  { name: 'compression', value: 'zstd|lz4|none', help: "MCAP: chunk compression (default 'zstd')." },
  { name: 'chunk-size', value: 'BYTES', help: 'MCAP: uncompressed bytes per chunk (default 1048576).' },
];

export function mcapWriteFlags(values: Values): { compression?: 'zstd' | 'lz4' | 'none'; chunkSize?: number } {
  const compression = choice(values, 'compression', ['zstd', 'lz4', 'none'] as const);
  const chunkSize = integer(values, 'chunk-size', 1);
  return {
    ...(compression !== undefined && { compression }),
    ...(chunkSize !== undefined && { chunkSize }),
  };
}

export function captureFilterFlags(values: Values): PcapFilterOptions {
  const ports = list(values, 'dst-port').map((p) => {
    const n = Number(p);
    if (!/^\d+$/.test(p) || n > 65535) throw new UsageError(`--dst-port must be a port 0..65535, got '${p}'`);
    return n;
  });
  const filter = text(values, 'filter');
  const src = text(values, 'src');
  return {
    ...(filter !== undefined && { filter }),
    ...(ports.length > 0 && { dstPort: ports }),
    ...(src !== undefined && { src }),
  };
}

export function readWindowFlags(values: Values): ReadDirectoryOptions {
  const minTime = seconds(values, 'min-time');
  const maxTime = seconds(values, 'max-time');
  if (minTime !== undefined && maxTime !== undefined && minTime > maxTime) {
    throw new UsageError(`--min-time (${minTime}) is after --max-time (${maxTime})`);
  }
  const onError = choice(values, 'on-error', ['fail', 'skip'] as const);
  return {
    ...(minTime !== undefined && { minTime }),
    ...(maxTime !== undefined && { maxTime }),
    ...(flag(values, 'include-raw') && { includeRaw: true }),
    ...(onError !== undefined && { onError }),
  };
}
