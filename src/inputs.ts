// A replay's inputs: one log or several, merged in time order. Native
// readers are merged natively; with any reader written in JS, all are read
// from JS through one merge.
import { native, type NativeMclReader } from './native.js';
import { callNative } from './errors.js';
import {
  checkRecordReader,
  nativeReaderOf,
  openLog,
  type ReadDirectoryOptions,
  type RecordReader,
} from './reader.js';

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
export type Inputs = { nativeReader: NativeMclReader; reader?: undefined } | { nativeReader?: undefined; reader: RecordReader };

function inputOf(reader: RecordReader): Inputs {
  const nativeReader = nativeReaderOf(reader);
  return nativeReader ? { nativeReader } : { reader };
}

/**
 * The native reader when every input is one of netreplay's (merged
 * natively when there are several), else one reader in JS over them all.
 */
export function openInputs(source: unknown, options: ReadDirectoryOptions): Inputs {
  const open = (input: unknown): RecordReader =>
    typeof input === 'string' ? openLog(input, options) : checkRecordReader(input, 'Replay');
  if (!Array.isArray(source)) return inputOf(open(source));
  if (source.length === 0) throw new TypeError(`Replay: 'source' is an empty array; give at least one log`);
  const readers = source.map(open);
  if (readers.length === 1) return inputOf(readers[0]!);
  const natives = readers.map(nativeReaderOf);
  if (natives.every((n) => n !== undefined)) {
    return { nativeReader: callNative(() => native.NativeMclReader.merge(natives as NativeMclReader[])) };
  }
  return { reader: new MergedReader(readers) };
}
