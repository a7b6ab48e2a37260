// ReadMcap and convert: MCAP files read natively, and MCL <-> MCAP.
import { native, type ConvertSummaryJs, type ErrorInfo } from './native.js';
import { callNative, translateError } from './errors.js';
import { LogReader, nativeReadOptions, READ_OPTION_NAMES, type ReadOptions } from './reader.js';
import { checkOnError, checkOptions, checkPath, describe, optionNames } from './validate.js';

export interface ReadMcapOptions extends ReadOptions {
  /**
   * Read only the channels of these topics (exact names): chunks that hold
   * none of them are skipped unread.
   */
  topics?: readonly string[];
  /**
   * The time messages are played by: 'log' (default: when recorded, the
   * file's order) or 'publish' (when sent; read in log-time order and
   * reordered by publish time within 0.5 s, so a message published more
   * than that before it was logged comes out of order).
   */
  timestamp?: McapTimestamp;
}

export type McapTimestamp = 'log' | 'publish';

export const READ_MCAP_OPTION_NAMES = optionNames<ReadMcapOptions>()(...READ_OPTION_NAMES, 'topics', 'timestamp');

/**
 * Reads MCAP files, several merged by log time: topic = channel topic,
 * type = schema name (null for a schemaless channel), elapsed time = log
 * time − the first message's (of all files), `timeNs` = the log time
 * (bigint), payload decoded for `msgpack` and `json` channels and given as
 * bytes for any other encoding (`encoding`, and the stream's `schema`, say
 * how to decode it). Equal log times go by channel id, then file order
 * within a chunk.
 */
export class ReadMcap extends LogReader {
  constructor(paths: string | readonly string[], options?: ReadMcapOptions) {
    const opts = checkOptions(options, 'options', READ_MCAP_OPTION_NAMES) as ReadMcapOptions;
    const list = typeof paths === 'string' ? [paths] : paths;
    if (!Array.isArray(list) || list.length === 0) {
      throw new TypeError(`ReadMcap: 'paths' must be a path or a non-empty array of paths, got ${describe(paths)}`);
    }
    const files = list.map((p, i) => checkPath(p, `paths[${i}]`));
    if (opts.topics !== undefined && !(Array.isArray(opts.topics) && opts.topics.every((t) => typeof t === 'string'))) {
      throw new TypeError(`'topics' must be an array of topic names, got ${describe(opts.topics)}`);
    }
    if (opts.timestamp !== undefined && opts.timestamp !== 'log' && opts.timestamp !== 'publish') {
      throw new TypeError(`'timestamp' must be 'log' or 'publish', got ${describe(opts.timestamp)}`);
    }
    const { includeRaw: _mclOnly, ...read } = nativeReadOptions(opts);
    const nativeOptions = {
      ...read,
      ...(opts.topics !== undefined && { topics: [...opts.topics] }),
      ...(opts.timestamp !== undefined && { timestamp: opts.timestamp }),
    };
    super(
      callNative(() => native.NativeLogReader.mcap(files, nativeOptions)),
      read.onError,
    );
  }
}

export interface ConvertOptions {
  /** MCAP output: chunk compression (default 'zstd'). */
  compression?: 'zstd' | 'lz4' | 'none';
  /** MCAP output: uncompressed bytes per chunk (default 1 MiB). */
  chunkSize?: number;
  /** Malformed input records: 'fail' (default) or 'skip' (counted). */
  onError?: 'fail' | 'skip';
}

export interface ConvertSummary {
  /** Messages written. */
  messages: number;
  /** The files written. */
  files: string[];
  /** Malformed records skipped (with `onError: 'skip'`). */
  skipped: number;
}

const CONVERT_OPTION_NAMES = optionNames<ConvertOptions>()('compression', 'chunkSize', 'onError');

/**
 * Convert a log between MCL and MCAP, on a worker thread: an MCL log (file,
 * split-set prefix or recording directory) to MCAP when `output` ends in
 * `.mcap` (one channel per type and topic, encoding msgpack, times and
 * payload bytes exact); an MCAP file to MCL otherwise (msgpack channels
 * only: a `.log` for one type, else a recording directory).
 */
export async function convert(input: string, output: string, options?: ConvertOptions): Promise<ConvertSummary> {
  const opts = checkOptions(options, 'options', CONVERT_OPTION_NAMES) as ConvertOptions;
  if (opts.compression !== undefined && typeof opts.compression !== 'string') {
    throw new TypeError(`'compression' must be 'zstd', 'lz4' or 'none', got ${describe(opts.compression)}`);
  }
  if (opts.chunkSize !== undefined && typeof opts.chunkSize !== 'number') {
    throw new TypeError(`'chunkSize' must be a number of bytes, got ${describe(opts.chunkSize)}`);
  }
  const nativeOptions = {
    onError: checkOnError(opts.onError),
    ...(opts.compression !== undefined && { compression: opts.compression }),
    ...(opts.chunkSize !== undefined && { chunkSize: opts.chunkSize }),
  };
  // The binding's typings cannot name a task's result: it is a summary or an error described.
  const result = (await callNative(() =>
    native.convertLog(checkPath(input, 'input'), checkPath(output, 'output'), nativeOptions),
  )) as ConvertSummaryJs | ErrorInfo;
  if (!('messages' in result)) throw translateError(result);
  return result;
}
