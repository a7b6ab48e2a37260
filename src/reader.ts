// ReadFile / ReadDirectory: MCL log readers over the native engine.
import { statSync } from 'node:fs';
import { native, type NativeLogReader, type HeaderInfo } from './native.js';
import { callNative, translateError } from './errors.js';
import { loggedMessage, streamFormatsOf, undecodable, type LoggedMessage, type StreamFormat } from './message.js';
import { checkOnError, checkOptions, checkPath, checkWindow, optionNames } from './validate.js';

export interface ReadOptions {
  /** Skip records logged before this elapsed time (seconds, inclusive). */
  minTime?: number;
  /** Stop after this elapsed time (seconds, inclusive). */
  maxTime?: number;
  /** Malformed records: 'fail' (default: read() throws) or 'skip' (counted in `skipped`). */
  onError?: 'fail' | 'skip';
}

export interface ReadDirectoryOptions extends ReadOptions {
  /** Read raw streams (header `>>> None`) too; skipped by default. */
  includeRaw?: boolean;
}

export const READ_OPTION_NAMES = optionNames<ReadOptions>()('minTime', 'maxTime', 'onError');
export const READ_DIRECTORY_OPTION_NAMES = optionNames<ReadDirectoryOptions>()(...READ_OPTION_NAMES, 'includeRaw');

export interface LogHeader {
  version: string | null;
  revision: string | null;
  created: string | null;
  /** The message type (`>>> Type`); null for raw data. */
  messageType: string | null;
  /** True for a raw stream (`>>> None`). */
  raw: boolean;
}

export interface LogStream {
  /** Message type, or null for raw data or a header-less file (MCAP: the schema name; null schemaless). */
  type: string | null;
  /** Files of the stream in read order (several for a split set). */
  files: string[];
  header: LogHeader | null;
  /** The payloads' encoding: `msgpack` for MCL, the MCAP channel's message encoding, `bytes` for a capture. */
  encoding: string;
  /** The MCAP channel's schema (null for MCL, captures and schemaless channels). */
  schema: { name: string; encoding: string; data: Uint8Array } | null;
  /**
   * What elapsed time 0 stands for, ns since the epoch: MCAP's first log
   * time, a capture's first frame; null for MCL (elapsed times only).
   */
  timeBaseNs: bigint | null;
}

/** What BufferData and Replay accept besides netreplay's own readers. */
export interface RecordReader {
  read(): unknown;
  isDataPending(): boolean;
  reset(): void;
}

const natives = new WeakMap<object, NativeLogReader>();

/** The native reader behind a LogReader (module-internal). */
export function nativeReaderOf(reader: object): NativeLogReader | undefined {
  return natives.get(reader);
}

function toHeader(h: HeaderInfo | undefined): LogHeader | null {
  if (!h) return null;
  return {
    version: h.version ?? null,
    revision: h.revision ?? null,
    created: h.created ?? null,
    messageType: h.messageType ?? null,
    raw: h.raw,
  };
}

/** The streams of a native reader, as TS shows them. */
export function logStreamsOf(nativeReader: NativeLogReader): readonly LogStream[] {
  return Object.freeze(
    nativeReader.streams.map((s) => ({
      type: s.messageType ?? null,
      files: s.files,
      header: toHeader(s.header),
      encoding: s.encoding ?? 'msgpack',
      schema: s.schema ? { name: s.schema.name, encoding: s.schema.encoding, data: s.schema.data } : null,
      timeBaseNs: s.encoding ? s.timeBaseNs : null,
    })),
  );
}

/** netreplay's readers: ReadFile, ReadDirectory, ReadMcap, ReadPcap. */
export abstract class LogReader implements RecordReader {
  readonly #native: NativeLogReader;
  readonly #formats: readonly (StreamFormat | undefined)[];
  readonly #skipUndecodable: boolean;
  /** Payloads that did not decode, skipped (`onError: 'skip'`). */
  #undecoded = 0;
  /** The streams read, in tie order (file name order). */
  readonly streams: readonly LogStream[];

  protected constructor(nativeReader: NativeLogReader, onError: 'fail' | 'skip') {
    this.#native = nativeReader;
    this.#skipUndecodable = onError === 'skip';
    natives.set(this, nativeReader);
    this.streams = logStreamsOf(nativeReader);
    this.#formats = streamFormatsOf(nativeReader.streams);
  }

  /**
   * The next message in time order, or null at the end of the data. Its
   * payload is decoded as its stream's encoding says (msgpack, JSON), or is
   * its bytes (other MCAP encodings, captures); one that does not decode
   * (bad JSON) is a MalformedRecordError, or skipped and counted.
   */
  read(): LoggedMessage | null {
    for (;;) {
      const next = callNative(() => this.#native.read());
      if (next === null) return null;
      if (!('payload' in next)) throw translateError(next);
      const type = this.streams[next.stream]?.type ?? null;
      const format = this.#formats[next.stream];
      try {
        return loggedMessage(next, type, format);
      } catch (err) {
        if (!this.#skipUndecodable) throw undecodable(next.elapsedTime, next.topic, type, format?.encoding ?? 'msgpack', next.payload, err);
        this.#undecoded++;
      }
    }
  }

  /** Whether more data may follow (false once the end was read). */
  isDataPending(): boolean {
    return callNative(() => this.#native.isDataPending());
  }

  /** Rewind to the first record. */
  reset(): void {
    callNative(() => this.#native.reset());
  }

  /** Malformed records skipped so far (with `onError: 'skip'`). */
  get skipped(): number {
    return callNative(() => this.#native.skipped()) + this.#undecoded;
  }

  /** The message types read, in stream order. */
  get messageTypes(): (string | null)[] {
    return this.streams.map((s) => s.type);
  }
}

/** The native options of ReadOptions (checked). */
export function nativeReadOptions(opts: ReadDirectoryOptions): { minTime?: number; maxTime?: number; onError: 'fail' | 'skip'; includeRaw: boolean } {
  const window = checkWindow(opts.minTime, opts.maxTime);
  const onError = checkOnError(opts.onError);
  if (opts.includeRaw !== undefined && typeof opts.includeRaw !== 'boolean') {
    throw new TypeError(`'includeRaw' must be a boolean, got ${typeof opts.includeRaw}`);
  }
  return { ...window, onError, includeRaw: opts.includeRaw === true };
}

function openNative(kind: 'file' | 'directory', path: unknown, options: unknown): [NativeLogReader, 'fail' | 'skip'] {
  const opts = checkOptions(options, 'options', kind === 'file' ? READ_OPTION_NAMES : READ_DIRECTORY_OPTION_NAMES);
  const nativeOptions = nativeReadOptions(opts);
  return [callNative(() => new native.NativeLogReader(kind, checkPath(path), nativeOptions)), nativeOptions.onError];
}

/** Reads one MCL log file, or a split set `<prefix>_000.log, _001.log, …`. */
export class ReadFile extends LogReader {
  constructor(pathOrPrefix: string, options?: ReadOptions) {
    super(...openNative('file', pathOrPrefix, options));
  }

  /** The file's header, or null for a header-less file. */
  get header(): LogHeader | null {
    return this.streams[0]?.header ?? null;
  }
}

/** Reads every stream of an MCL recording directory, merged in time order. */
export class ReadDirectory extends LogReader {
  constructor(directory: string, options?: ReadDirectoryOptions) {
    super(...openNative('directory', directory, options));
  }

  /** The header of the first stream (all share `created`), or null if empty. */
  get header(): LogHeader | null {
    return this.streams[0]?.header ?? null;
  }
}

/** Check the duck-typed reader contract; TypeError naming what is missing. */
export function checkRecordReader(reader: unknown, who: string): RecordReader {
  if (typeof reader !== 'object' || reader === null) {
    throw new TypeError(`${who}: 'reader' must be an object with read(), isDataPending() and reset(), got ${reader === null ? 'null' : typeof reader}`);
  }
  for (const method of ['read', 'isDataPending', 'reset']) {
    if (typeof (reader as Record<string, unknown>)[method] !== 'function') {
      throw new TypeError(`${who}: 'reader' has no method ${method}()`);
    }
  }
  return reader as RecordReader;
}

/**
 * A log at `path`, whichever it is: a recording directory (ReadDirectory),
 * or a file or split-set prefix (ReadFile, which says why when it is
 * neither). `includeRaw` applies to directories only.
 */
export function openLog(path: string, options: ReadDirectoryOptions = {}): ReadFile | ReadDirectory {
  checkPath(path, 'source');
  let isDirectory = false;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch {
    // Not a path that exists: ReadFile tries it as a split-set prefix and says so.
  }
  if (isDirectory) return new ReadDirectory(path, options);
  const { includeRaw: _directoriesOnly, ...read } = options;
  return new ReadFile(path, read);
}
