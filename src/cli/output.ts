// What the commands share: how a message is printed, and the flags that
// bound what is read of a log.
import type { LoggedMessage, Message } from '../message.js';
import type { ReadDirectoryOptions } from '../reader.js';
import { flag, seconds, text, UsageError, type Flag, type Values } from './args.js';

/** Payload bytes (Uint8Array fields) are printed as hex strings. */
function jsonReplacer(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? Buffer.from(value).toString('hex') : typeof value === 'bigint' ? value.toString() : value;
}

/** time, topic, type and payload on one line (the payload as JSON). */
export function formatLine(m: LoggedMessage): string {
  return `${m.elapsedTime.toFixed(6).padStart(12)}  ${JSON.stringify(m.topic)}  ${m.type ?? 'None'}  ${JSON.stringify(m.payload, jsonReplacer)}`;
}

/** One NDJSON object. */
export function formatJson(m: Message): string {
  return JSON.stringify(
    { time: m.elapsedTime, topic: m.topic, type: m.type, payload: m.payload, lateness: m.lateness, pass: m.pass, backfill: m.backfill },
    jsonReplacer,
  );
}

export const READ_FLAGS: Flag[] = [
  { name: 'min-time', value: 'S', help: 'Read no message logged before S seconds (elapsed time).' },
  { name: 'max-time', value: 'S', help: 'Read no message logged after S seconds.' },
  { name: 'include-raw', help: 'Also read raw streams (header >>> None) of a recording directory.' },
  { name: 'on-error', value: 'fail|skip', help: "A malformed record: 'fail' (default: exit 1 naming file and line) or 'skip' (count it)." },
];

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
