// What a log holds, read natively in one pass without decoding payloads
// (the CLI's `info`).
import { INPUT_OPTION_NAMES, openInputs, type InputOptions } from './inputs.js';
import { callNative, translateError } from './errors.js';
import { logStreamsOf } from './reader.js';
import { checkOptions } from './validate.js';
import type { CaptureCounts } from './pcap.js';

/** A capture among the inputs (pcap, pcapng): what its reader counted. */
export interface CaptureSummary {
  file: string;
  format: 'pcap' | 'pcapng';
  /** The first frame's capture time, ns since the epoch. */
  baseNs: bigint | null;
  counts: CaptureCounts;
  /** The original destinations (the topics), in order of first appearance. */
  destinations: string[];
  /** Damage to the file's structure, where reading stops; null if none. */
  damage: string | null;
}

/** One (type, topic) of a log. Times in seconds, as the log's elapsed times. */
export interface TopicSummary {
  type: string | null;
  topic: string;
  count: number;
  firstTime: number;
  lastTime: number;
  /** Mean rate, (count − 1) / (last − first); null for one message or a span of 0. */
  rate: number | null;
  /** The longest time between two consecutive messages of this type and topic (0 for one). */
  largestGap: number;
  /** Payload bytes in all, and per message. */
  bytes: number;
  meanBytes: number;
}

export interface LogSummary {
  /** The streams read: type and files (several for a split set), in stream order. */
  streams: {
    type: string | null;
    files: string[];
    created: string | null;
    version: string | null;
    /** `msgpack` for MCL, else the MCAP channel's encoding, or `bytes` for a capture. */
    encoding: string;
    /** Epoch ns of elapsed time 0 (MCAP, captures); null for MCL. */
    timeBaseNs: bigint | null;
  }[];
  /** In the order each (type, topic) first appears. */
  topics: TopicSummary[];
  count: number;
  bytes: number;
  /** First and last message times; null without messages. */
  firstTime: number | null;
  lastTime: number | null;
  /** Malformed records skipped (with `onError: 'skip'`); for captures, the frames skipped (not UDP, fragments...). */
  skipped: number;
  /** The captures among the inputs. */
  captures: CaptureSummary[];
}

/**
 * Summarizes the logs at `paths` (files, split-set prefixes or recording
 * directories; several are read as one), within `minTime`/`maxTime`.
 * Blocks while it reads: about as long as reading the files.
 */
export function summarizeLog(paths: string | readonly string[], options: InputOptions = {}): LogSummary {
  const opts = checkOptions(options, 'options', INPUT_OPTION_NAMES) as InputOptions;
  const inputs = openInputs(paths, opts);
  const reader = inputs.nativeReader;
  if (!reader) throw new TypeError('summarizeLog reads log paths only');
  const streams = logStreamsOf(reader).map((s) => ({
    type: s.type,
    files: s.files,
    created: s.header?.created ?? null,
    version: s.header?.version ?? null,
    encoding: s.encoding,
    timeBaseNs: s.timeBaseNs,
  }));
  const captures = reader.captures.map((c) => {
    const { frames, datagrams, filtered, notUdp, fragments, truncated, malformed, linkType, untimed } = c;
    return {
      file: streams[c.firstStream]?.files[0] ?? '',
      format: c.format as 'pcap' | 'pcapng',
      baseNs: c.baseNs ?? null,
      counts: { frames, datagrams, filtered, notUdp, fragments, truncated, malformed, linkType, untimed },
      destinations: c.destinations,
      damage: c.damage ?? null,
    };
  });
  const result = callNative(() => reader.summarize());
  if (!('topics' in result)) throw translateError(result);
  return {
    streams,
    topics: result.topics.map((t) => {
      const span = t.lastTime - t.firstTime;
      return {
        type: streams[t.stream]?.type ?? null,
        topic: t.topic,
        count: t.count,
        firstTime: t.firstTime,
        lastTime: t.lastTime,
        rate: t.count > 1 && span > 0 ? (t.count - 1) / span : null,
        largestGap: t.largestGap,
        bytes: t.bytes,
        meanBytes: t.bytes / t.count,
      };
    }),
    count: result.count,
    bytes: result.bytes,
    firstTime: result.firstTime ?? null,
    lastTime: result.lastTime ?? null,
    skipped: result.skipped,
    captures,
  };
}
