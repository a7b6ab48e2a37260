// What the commands share: how a message is printed, and the flags that
// bound what is read of a log.
import type { LoggedMessage, Message } from '../message.js';
import type { ReadDirectoryOptions } from '../reader.js';
import type { PcapFilterOptions } from '../pcap.js';
import { flag, list, seconds, text, UsageError, type Flag, type Values } from './args.js';

/** Payload bytes (Uint8Array fields) are printed as hex strings. */
function jsonReplacer(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? Buffer.from(value).toString('hex') : typeof value === 'bigint' ? value.toString() : value;
}

/** What is printed of a payload: decoded, or its bytes as hex when it is not decoded (a capture's datagrams). */
function shown(m: LoggedMessage): unknown {
  return m.payload === undefined && m.payloadBytes ? Buffer.from(m.payloadBytes).toString('hex') : m.payload;
}

/** time, topic, type and payload on one line (the payload as JSON; a capture's bytes as hex). */
export function formatLine(m: LoggedMessage): string {
  return `${m.elapsedTime.toFixed(6).padStart(12)}  ${JSON.stringify(m.topic)}  ${m.type ?? 'None'}  ${JSON.stringify(shown(m), jsonReplacer)}`;
}

/** One NDJSON object. */
export function formatJson(m: Message): string {
  return JSON.stringify(
    { time: m.elapsedTime, topic: m.topic, type: m.type, payload: shown(m), lateness: m.lateness, pass: m.pass, backfill: m.backfill },
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
  const onError = text(values, 'on-error');
  if (onError !== undefined && onError !== 'fail' && onError !== 'skip') {
    throw new UsageError(`--on-error must be 'fail' or 'skip', got '${onError}'`);
  }
  return {
    ...(minTime !== undefined && { minTime }),
    ...(maxTime !== undefined && { maxTime }),
    ...(flag(values, 'include-raw') && { includeRaw: true }),
    ...(onError !== undefined && { onError }),
  };
}
