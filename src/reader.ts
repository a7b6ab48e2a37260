// ReadFile / ReadDirectory: MCL log readers over the native engine.
import { statSync } from 'node:fs';
import { native, type NativeLogReader, type HeaderInfo, type NativeRecord } from './native.js';
import { callNative, translateError } from './errors.js';
import { decodePayload, type LoggedMessage } from './message.js';
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
  /** Message type, or null for raw data or a header-less file. */
  type: string | null;
  /** Files of the stream in read order (several for a split set). */
  files: string[];
  header: LogHeader | null;
}

/** What BufferData and Replay accept besides netreplay's own readers. */
export interface RecordReader {
  read(): unknown;
  isDataPending(): boolean;
  reset(): void;
}

const natives = new WeakMap<object, NativeLogReader>();

/** The native reader behind a ReadFile/ReadDirectory/ReadPcap (module-internal). */
export function nativeReaderOf(reader: object): NativeLogReader | undefined {
  return natives.get(reader);
}

/** Make `reader` one of netreplay's native readers, read natively by a replay (ReadPcap). */
export function registerNativeReader(reader: object, nativeReader: NativeLogReader): void {
  natives.set(reader, nativeReader);
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

abstract class LogReader implements RecordReader {
  readonly #native: NativeLogReader;
  /** The streams read, in tie order (file name order). */
  readonly streams: readonly LogStream[];

  protected constructor(kind: 'file' | 'directory', path: unknown, options: unknown) {
    const opts = checkOptions(options, 'options', kind === 'file' ? READ_OPTION_NAMES : READ_DIRECTORY_OPTION_NAMES);
    const window = checkWindow(opts.minTime, opts.maxTime);
    const onError = checkOnError(opts.onError);
    if (opts.includeRaw !== undefined && typeof opts.includeRaw !== 'boolean') {
      throw new TypeError(`'includeRaw' must be a boolean, got ${typeof opts.includeRaw}`);
    }
    const nativeOptions = { ...window, onError, includeRaw: opts.includeRaw === true };
    this.#native = callNative(() => new native.NativeLogReader(kind, checkPath(path), nativeOptions));
    natives.set(this, this.#native);
    this.streams = Object.freeze(
      this.#native.streams.map((s) => ({
        type: s.messageType ?? null,
        files: s.files,
        header: toHeader(s.header),
      })),
    );
  }

  /** The next message in time order, or null at the end of the data. */
  read(): LoggedMessage | null {
    const next = callNative(() => this.#native.read());
    if (next === null) return null;
    if (!('payload' in next)) throw translateError(next);
    return this.#toMessage(next);
  }

  #toMessage(record: NativeRecord): LoggedMessage {
    return {
      elapsedTime: record.elapsedTime,
      topic: record.topic,
      type: this.streams[record.stream]?.type ?? null,
      payload: decodePayload(record.payload),
      payloadBytes: record.payload,
    };
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
    return callNative(() => this.#native.skipped());
  }

  /** The message types read, in stream order. */
  get messageTypes(): (string | null)[] {
    return this.streams.map((s) => s.type);
  }
}

/** Reads one MCL log file, or a split set `<prefix>_000.log, _001.log, …`. */
export class ReadFile extends LogReader {
  constructor(pathOrPrefix: string, options?: ReadOptions) {
    super('file', pathOrPrefix, options);
  }

  /** The file's header, or null for a header-less file. */
  get header(): LogHeader | null {
    return this.streams[0]?.header ?? null;
  }
}

/** Reads every stream of an MCL recording directory, merged in time order. */
export class ReadDirectory extends LogReader {
  constructor(directory: string, options?: ReadDirectoryOptions) {
    super('directory', directory, options);
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
