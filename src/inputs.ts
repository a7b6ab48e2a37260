// A replay's inputs: one log or several, merged in time order. Native
// readers are merged natively; with any reader written in JS, all are read
// from JS through one merge.
import { native, type NativeLogReader } from './native.js';
import { callNative } from './errors.js';
import {
  checkRecordReader,
  nativeReaderOf,
  openLog,
  READ_DIRECTORY_OPTION_NAMES,
  type ReadDirectoryOptions,
  type RecordReader,
} from './reader.js';
import { PCAP_FILTER_OPTION_NAMES, ReadPcap, type PcapFilterOptions } from './pcap.js';
import { ReadMcap, type McapTimestamp } from './mcap.js';
import { optionNames } from './validate.js';

/** Options of MCAP inputs given by path. */
export interface McapInputOptions {
  /** MCAP files: play by log time (default) or publish time (see ReadMcap). */
  timestamp?: McapTimestamp;
}

/** How paths given to a Replay or summarizeLog are read, whatever their format. */
export type InputOptions = ReadDirectoryOptions & PcapFilterOptions & McapInputOptions;

export const INPUT_OPTION_NAMES = optionNames<InputOptions>()(...READ_DIRECTORY_OPTION_NAMES, ...PCAP_FILTER_OPTION_NAMES, 'timestamp');

/** A log path, a reader, or several of them merged in time order. */
export type ReplaySource = string | RecordReader | readonly (string | RecordReader)[];

/** Reads several readers as one, in time order (ties by input order, then record order). */
class MergedReader implements RecordReader {
  readonly #inputs: RecordReader[];
  #heads: (Record<string, unknown> | null | undefined)[];

  constructor(inputs: RecordReader[]) {
    this.#inputs = inputs;
    this.#heads = inputs.map(() => undefined);
  }

  read(): unknown {
    let best = -1;
    let bestTime = Infinity;
    for (let i = 0; i < this.#inputs.length; i++) {
      if (this.#heads[i] === undefined) {
        const next = this.#inputs[i]!.read();
        this.#heads[i] = next === null || next === undefined ? null : (next as Record<string, unknown>);
      }
      const head = this.#heads[i];
      if (head === null || head === undefined) continue;
      // A record without a usable time goes first: the pump reports it.
      const raw = Number(head.elapsedTime ?? head.elapsed_time);
      const t = Number.isNaN(raw) ? -Infinity : raw;
      // Strictly earlier only: ties keep input order.
      if (best === -1 || t < bestTime) {
        best = i;
        bestTime = t;
      }
    }
    if (best === -1) return null;
    const head = this.#heads[best];
    this.#heads[best] = undefined;
    return head;
  }

  isDataPending(): boolean {
    return this.#heads.some((h) => h !== null && h !== undefined) || this.#inputs.some((r) => r.isDataPending());
  }

  reset(): void {
    for (const r of this.#inputs) r.reset();
    this.#heads = this.#inputs.map(() => undefined);
  }
}

/** What a replay plays: a native reader (taken over), or a reader written in JS. */
export type Inputs = { nativeReader: NativeLogReader; reader?: undefined } | { nativeReader?: undefined; reader: RecordReader };

function inputOf(reader: RecordReader): Inputs {
  const nativeReader = nativeReaderOf(reader);
  return nativeReader ? { nativeReader } : { reader };
}

/**
 * The native reader when every input is one of netreplay's (merged
 * natively when there are several), else one reader in JS over them all.
 */
export function openInputs(source: unknown, options: InputOptions): Inputs {
  const { filter, dstPort, src, timestamp, ...logOptions } = options;
  const pcapOptions = {
    ...(filter !== undefined && { filter }),
    ...(dstPort !== undefined && { dstPort }),
    ...(src !== undefined && { src }),
  };
  let captures = 0;
  let mcaps = 0;
  // A path whose content says pcap/pcapng is a capture (ReadPcap), filtered;
  // an MCAP file goes to ReadMcap when its options are given.
  const open = (input: unknown): RecordReader => {
    if (typeof input !== 'string') return checkRecordReader(input, 'Replay');
    const { includeRaw: _logsOnly, ...read } = logOptions;
    // The core's detection by content, once per path (null: not a file).
    const format = native.detectFormat(input);
    if (format === 'pcap' || format === 'pcapng') {
      captures++;
      return new ReadPcap(input, { ...read, ...pcapOptions });
    }
    if (timestamp !== undefined && format === 'mcap') {
      mcaps++;
      return new ReadMcap(input, { ...read, timestamp });
    }
    return openLog(input, logOptions);
  };
  const checkFilters = () => {
    const given = Object.keys(pcapOptions);
    if (given.length > 0 && captures === 0) {
      throw new TypeError(`'${given[0]}' applies to capture paths (pcap, pcapng) only; give ReadPcap its own filter`);
    }
    if (timestamp !== undefined && mcaps === 0) {
      throw new TypeError(`'timestamp' applies to MCAP file paths only; give ReadMcap its own`);
    }
  };
  if (!Array.isArray(source)) {
    const reader = open(source);
    checkFilters();
    return inputOf(reader);
  }
  if (source.length === 0) throw new TypeError(`Replay: 'source' is an empty array; give at least one log`);
  const readers = source.map(open);
  checkFilters();
  if (readers.length === 1) return inputOf(readers[0]!);
  const natives = readers.map(nativeReaderOf);
  if (natives.every((n) => n !== undefined)) {
    return { nativeReader: callNative(() => native.NativeLogReader.merge(natives as NativeLogReader[])) };
  }
  return { reader: new MergedReader(readers) };
}
