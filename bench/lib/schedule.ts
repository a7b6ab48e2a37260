// Generated schedules for the timing harness, and the logs, datagrams and
// pcaps that carry them. Record i's payload is the msgpack map {i: <u32 i>},
// so every datagram of every contender ends in i as a big-endian u32: the
// receiver identifies records by those 4 bytes.
import { WriteFile } from '../../src/index.js';

export const TOPIC = 'bench';

export interface Schedule {
  name: string;
  description: string;
  /** Record i is due this many ns after the start (integer µs multiples). */
  timesNs: Float64Array;
}

const US = 1_000;
const MS = 1_000_000;

export function steady(rateHz: number, count: number): Schedule {
  const periodNs = Math.round(1e9 / rateHz);
  if (periodNs % US !== 0) throw new Error(`a ${rateHz} Hz period is not a whole number of µs`);
  const timesNs = new Float64Array(count);
  for (let i = 0; i < count; i++) timesNs[i] = i * periodNs;
  const rate = rateHz >= 1000 ? `${rateHz / 1000} kHz` : `${rateHz} Hz`;
  return { name: `steady-${rate.replace(' ', '')}`, description: `${count} records at ${rate}`, timesNs };
}

/** `bursts` groups of `size` records with equal times, one group every `periodMs`. */
export function bursty(size: number, periodMs: number, bursts: number): Schedule {
  const timesNs = new Float64Array(size * bursts);
  for (let i = 0; i < timesNs.length; i++) timesNs[i] = Math.floor(i / size) * periodMs * MS;
  return {
    name: 'bursty',
    description: `${bursts} bursts of ${size} records with equal times, every ${periodMs} ms`,
    timesNs,
  };
}

/** `before` records at 1 kHz, a gap of `gapMs`, then `after` records at 1 kHz. */
export function longGap(before: number, gapMs: number, after: number): Schedule {
  const timesNs = new Float64Array(before + after);
  for (let i = 0; i < before; i++) timesNs[i] = i * MS;
  const resume = (before - 1) * MS + gapMs * MS;
  for (let i = 0; i < after; i++) timesNs[before + i] = resume + i * MS;
  return {
    name: 'long-gap',
    description: `${before} records at 1 kHz, a ${gapMs / 1000} s gap, ${after} more`,
    timesNs,
  };
}

/** The longest gap of a schedule: [start, end) in ns from the schedule's start. */
export function longestGap(s: Schedule): [number, number] {
  let best: [number, number] = [0, 0];
  for (let i = 1; i < s.timesNs.length; i++) {
    const a = s.timesNs[i - 1]!;
    const b = s.timesNs[i]!;
    if (b - a > best[1] - best[0]) best = [a, b];
  }
  return best;
}

/** The logged payload of record i: msgpack {"i": u32 i}, 8 bytes. */
export function payloadOf(i: number): Buffer {
  const p = Buffer.from([0x81, 0xa1, 0x69, 0xce, 0, 0, 0, 0]);
  p.writeUInt32BE(i, 4);
  return p;
}

const DATAGRAM_HEAD = Buffer.from([0x92, 0xa0 | TOPIC.length, ...Buffer.from(TOPIC)]);

/** What netreplay's UDP sink sends for record i: the msgpack array [topic, payload] (MCL's wire format). */
export function datagramOf(i: number): Buffer {
  return Buffer.concat([DATAGRAM_HEAD, payloadOf(i)]);
}

/**
 * Write the schedule as an MCL log with netreplay's own writer; returns its
 * path. Record i carries index `firstSeq + i` (logs played side by side to
 * one receiver number their records apart).
 */
export function writeScheduleLog(prefix: string, s: Schedule, type = 'Bench', firstSeq = 0): string {
  const writer = new WriteFile(prefix, { type, created: '2026-01-01 00:00:00' });
  for (let i = 0; i < s.timesNs.length; i++) writer.write(s.timesNs[i]! / 1e9, TOPIC, payloadOf(firstSeq + i));
  const [path] = writer.close();
  if (path === undefined) throw new Error(`WriteFile wrote no file for ${prefix}`);
  return path;
}
