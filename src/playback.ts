// Playback control options: what of the log a Replay plays and how its
// timeline is shaped. Types are checked here; domains and conflicts are
// checked once, in core, with errors that name the option and the value.
import type { PlaybackOptionsJs } from './native.js';
import { optionNames } from './validate.js';

/** A topic or type to select: the exact name, or a RegExp tested against it. */
export type NamePattern = string | RegExp;

export interface PlaybackOptions {
  /** Each pass starts this many seconds after the first record (a start offset). */
  startOffset?: number;
  /** Each pass plays this many seconds of the log from its start. */
  duration?: number;
  /** Each pass ends at this log time (seconds, as the log's elapsed times). */
  until?: number;
  /** End the replay after this many messages (backfill not counted; across loops). */
  limit?: number;
  /** start() leaves the replay paused on its first message: step(), start() or playUntil() go on. */
  startPaused?: boolean;
  /**
   * Seconds of wall-clock time to wait before the first message, and before
   * each loop (not scaled by the speed; a pause keeps what is left of it).
   */
  delay?: number;
  /** Play the log again at its end: true for ever, or this many times in all. */
  loop?: boolean | number;
  /** Seconds of log time between loops, after one gap (scaled by the speed). */
  loopDelay?: number;
  /**
   * Each loop's times continue the last one's: pass k reports
   * `elapsed + k·(duration + loopDelay)`, where a pass's duration is its span
   * plus its mean gap, so times never go backwards.
   */
  continuousTime?: boolean;
  /** No gap between consecutive messages is longer than this (seconds; tcpreplay --maxsleep). */
  maxGap?: number;
  /** A fixed rate that ignores the logged times (tcpreplay --pps, --mbps). */
  rate?: { messagesPerSecond: number } | { bytesPerSecond: number };
  /**
   * The wall-clock instant (CLOCK_REALTIME: a Date, or nanoseconds since the
   * epoch as a bigint) at which the first message is due. Converted once to
   * the monotonic clock; one in the past starts at once and the messages
   * catch up, counted late.
   */
  startAt?: Date | bigint;
  /**
   * Emit 'clock' events at this rate (Hz) carrying the logical time; with
   * `destination` (`udp://host:port`) also send each tick as an MCL datagram
   * `['/clock', { name: 'Clock', time, timeNs }]`.
   */
  clock?: number | { hz: number; destination?: string };
  /**
   * 'virtual': play without waiting, each message reported with the
   * deadline it would have had (on a virtual clock from 0) and lateness 0;
   * advanceTo()/advanceBy() move the clock by hand. Default 'real'.
   */
  time?: 'real' | 'virtual';
  /** Play only these topics. */
  topics?: readonly NamePattern[];
  excludeTopics?: readonly NamePattern[];
  /** Play only these message types (a raw stream's type is 'None'). */
  types?: readonly NamePattern[];
  excludeTypes?: readonly NamePattern[];
  /** Rename topics, `{ from: to }` (after the topic filters). */
  remap?: Readonly<Record<string, string>> | ReadonlyMap<string, string>;
  /**
   * At a seek, a start offset or a loop seam, first deliver the last message
   * of each (type, topic) before the position, marked `backfill: true`.
   */
  backfill?: boolean;
  /** Seconds between 'progress' events (default 0.1; at least 0.1). */
  progressInterval?: number;
}

export const PLAYBACK_OPTION_NAMES = optionNames<PlaybackOptions>()(
  'startOffset',
  'duration',
  'until',
  'limit',
  'startPaused',
  'delay',
  'loop',
  'loopDelay',
  'continuousTime',
  'maxGap',
  'rate',
  'startAt',
  'clock',
  'time',
  'topics',
  'excludeTopics',
  'types',
  'excludeTypes',
  'remap',
  'backfill',
  'progressInterval',
);

function kind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function number(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number') throw new TypeError(`'${name}' must be a number, got ${kind(value)}`);
  return value;
}

function boolean(value: unknown, name: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw new TypeError(`'${name}' must be a boolean, got ${kind(value)}`);
  return value;
}

function patterns(value: unknown, name: string) {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw new TypeError(`'${name}' must be an array of strings or RegExps, got ${kind(value)}`);
  return value.map((p: unknown, i) => {
    if (typeof p === 'string') return { exact: p };
    if (p instanceof RegExp) {
      const unsupported = p.flags.replace(/[igu]/g, '');
      if (unsupported) {
        throw new RangeError(`'${name}[${i}]': RegExp flags '${unsupported}' are not supported (only i, g and u)`);
      }
      return { regex: p.source, ignoreCase: p.ignoreCase };
    }
    throw new TypeError(`'${name}[${i}]' must be a string or a RegExp, got ${kind(p)}`);
  });
}

function remapOf(value: unknown) {
  if (value === undefined) return undefined;
  const entries =
    value instanceof Map
      ? [...value.entries()]
      : typeof value === 'object' && value !== null && !Array.isArray(value)
        ? Object.entries(value)
        : undefined;
  if (!entries) throw new TypeError(`'remap' must be an object or a Map of topic to topic, got ${kind(value)}`);
  return entries.map(([from, to]) => {
    if (typeof from !== 'string' || typeof to !== 'string') {
      throw new TypeError(`'remap' maps topics (strings) to topics, got ${kind(from)} → ${kind(to)}`);
    }
    return { from, to };
  });
}

function startAtOf(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (value instanceof Date) {
    const ms = value.getTime();
    if (Number.isNaN(ms)) throw new RangeError(`'startAt' is an invalid Date`);
    return (BigInt(ms) * 1_000_000n).toString();
  }
  if (typeof value === 'bigint') return value.toString();
  throw new TypeError(`'startAt' must be a Date or nanoseconds since the epoch as a bigint, got ${kind(value)}`);
}

/** The options as the native player takes them. */
export function playbackOptions(o: PlaybackOptions): PlaybackOptionsJs {
  const out: PlaybackOptionsJs = {};
  const set = <K extends keyof PlaybackOptionsJs>(key: K, value: PlaybackOptionsJs[K] | undefined) => {
    if (value !== undefined) out[key] = value;
  };
  set('startOffset', number(o.startOffset, 'startOffset'));
  set('duration', number(o.duration, 'duration'));
  set('until', number(o.until, 'until'));
  set('limit', number(o.limit, 'limit'));
  set('startPaused', boolean(o.startPaused, 'startPaused'));
  set('delay', number(o.delay, 'delay'));
  if (o.loop !== undefined) {
    if (typeof o.loop === 'boolean') set('passes', o.loop ? 0 : 1);
    else if (typeof o.loop === 'number') {
      if (!(o.loop >= 1)) throw new RangeError(`'loop' must be true, false or a number of passes >= 1, got ${o.loop}`);
      set('passes', o.loop);
    } else throw new TypeError(`'loop' must be a boolean or a number, got ${kind(o.loop)}`);
  }
  set('loopDelay', number(o.loopDelay, 'loopDelay'));
  set('continuousTime', boolean(o.continuousTime, 'continuousTime'));
  set('maxGap', number(o.maxGap, 'maxGap'));
  if (o.rate !== undefined) {
    const rate = o.rate as Record<string, unknown>;
    if (typeof rate !== 'object' || rate === null) {
      throw new TypeError(`'rate' must be { messagesPerSecond } or { bytesPerSecond }, got ${kind(rate)}`);
    }
    for (const key of Object.keys(rate)) {
      if (key !== 'messagesPerSecond' && key !== 'bytesPerSecond') {
        throw new TypeError(`unknown option '${key}' in 'rate'; known: messagesPerSecond, bytesPerSecond`);
      }
    }
    set('messagesPerSecond', number(rate.messagesPerSecond, 'rate.messagesPerSecond'));
    set('bytesPerSecond', number(rate.bytesPerSecond, 'rate.bytesPerSecond'));
    if (out.messagesPerSecond === undefined && out.bytesPerSecond === undefined) {
      throw new TypeError(`'rate' must give messagesPerSecond or bytesPerSecond`);
    }
  }
  set('startAt', startAtOf(o.startAt));
  if (o.clock !== undefined) {
    if (typeof o.clock === 'number') set('clockHz', o.clock);
    else if (typeof o.clock === 'object' && o.clock !== null) {
      set('clockHz', number(o.clock.hz, 'clock.hz'));
      if (o.clock.destination !== undefined) {
        if (typeof o.clock.destination !== 'string') {
          throw new TypeError(`'clock.destination' must be a udp:// URL, got ${kind(o.clock.destination)}`);
        }
        set('clockDestination', o.clock.destination);
      }
      if (out.clockHz === undefined) throw new TypeError(`'clock' needs a rate: { hz }`);
    } else throw new TypeError(`'clock' must be a rate in Hz or { hz, destination }, got ${kind(o.clock)}`);
  }
  if (o.time !== undefined && o.time !== 'real' && o.time !== 'virtual') {
    throw new RangeError(`'time' must be 'real' or 'virtual', got ${kind(o.time)}`);
  }
  if (o.time === 'virtual') set('virtualTime', true);
  set('topics', patterns(o.topics, 'topics'));
  set('excludeTopics', patterns(o.excludeTopics, 'excludeTopics'));
  set('types', patterns(o.types, 'types'));
  set('excludeTypes', patterns(o.excludeTypes, 'excludeTypes'));
  set('remap', remapOf(o.remap));
  set('backfill', boolean(o.backfill, 'backfill'));
  return out;
}

/** Milliseconds between progress events. */
export function progressIntervalMs(value: unknown): number {
  const s = number(value, 'progressInterval') ?? 0.1;
  if (!Number.isFinite(s) || s < 0.1) {
    throw new RangeError(`'progressInterval' must be a number of seconds >= 0.1 (at most 10 per second), got ${s}`);
  }
  return s * 1000;
}
