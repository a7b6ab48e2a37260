// The message shape, and decoding of the native batch layout into messages.
import { Unpackr } from 'msgpackr';

/** A record as logged. */
export interface LoggedMessage<P = unknown> {
  /** Elapsed time as logged, in seconds. */
  elapsedTime: number;
  topic: string;
  /** Message type from the log header (`>>> Type`), or null for raw data. */
  type: string | null;
  /** The payload decoded with msgpackr (undefined with `decode: false`). */
  payload: P;
  /** The logged payload bytes (with `rawPayload: true`, or from a reader). */
  payloadBytes?: Uint8Array;
}

/** A record as delivered by a replay. */
export interface Message<P = unknown> extends LoggedMessage<P> {
  /** Seconds between the record's deadline and its handover by the engine (0 at Infinity speed). */
  lateness: number;
  /**
   * The deadline in nanoseconds of CLOCK_MONOTONIC — the clock of
   * `process.hrtime.bigint()` — so a listener can measure its own lateness.
   * NaN at Infinity speed.
   */
  deadline: number;
}

export interface DeliveryOptions {
  /** Decode payloads with msgpackr (default true). */
  decode?: boolean;
  /** Also give the payload bytes as `payloadBytes` (default false). */
  rawPayload?: boolean;
}

/** Layout in crates/netreplay-node/src/delivery.rs. */
const RECORD_HEADER_BYTES = 36;

// Records are plain msgpack maps and arrays: no records/structures extension.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

export function decodePayload(bytes: Uint8Array): unknown {
  return unpackr.unpack(bytes);
}

/** Turns native batches into messages; keeps the topic table across batches. */
export class BatchDecoder {
  readonly #topics: string[] = [];
  readonly #types: readonly (string | null)[];
  readonly #decode: boolean;
  readonly #raw: boolean;

  constructor(streamTypes: readonly (string | null)[], options: DeliveryOptions) {
    this.#types = streamTypes;
    this.#decode = options.decode ?? true;
    this.#raw = options.rawPayload ?? false;
  }

  decode(data: Buffer, count: number, newTopics: readonly string[]): Message[] {
    for (const t of newTopics) this.#topics.push(t);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const out = new Array<Message>(count);
    let at = 0;
    for (let i = 0; i < count; i++) {
      const elapsedTime = view.getFloat64(at, true);
      const lateness = view.getFloat64(at + 8, true) / 1e9;
      const deadline = view.getFloat64(at + 16, true);
      const stream = view.getUint32(at + 24, true);
      const topic = this.#topics[view.getUint32(at + 28, true)] ?? '';
      const length = view.getUint32(at + 32, true);
      const start = at + RECORD_HEADER_BYTES;
      const bytes = data.subarray(start, start + length);
      at = start + length;
      const message: Message = {
        elapsedTime,
        topic,
        type: this.#types[stream] ?? null,
        payload: this.#decode ? unpackr.unpack(bytes) : undefined,
        lateness,
        deadline,
      };
      if (this.#raw) message.payloadBytes = bytes;
      out[i] = message;
    }
    return out;
  }
}
