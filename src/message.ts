// The message shape, and decoding of the native batch layout into messages.
import { Unpackr } from 'msgpackr';
import { MalformedRecordError } from './errors.js';

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
  /**
   * The absolute time in ns since the epoch, for inputs that have one (MCAP:
   * the log time; a capture: the capture time): the input's time base plus
   * the elapsed time (with `continuousTime`, plus the loops before). Absent
   * for MCL logs, whose times are elapsed only.
   */
  timeNs?: bigint;
  /**
   * How the payload is encoded, for inputs other than MCL logs: the MCAP
   * channel's message encoding (`msgpack` and `json` are decoded, any other
   * — `cdr`, `protobuf`, `ros1`, ... — is given as its bytes), or `bytes` for
   * a capture's datagrams. Absent for MCL (msgpack).
   */
  encoding?: string;
}

/** A record as delivered by a replay. */
export interface Message<P = unknown> extends LoggedMessage<P> {
  /**
   * Seconds between the record's deadline and its arrival in JS (when the
   * batch holding it reached the event loop); 0 at Infinity speed. The
   * engine's own handover lateness is in `stats().handoverLateness`.
   */
  lateness: number;
  /**
   * The deadline in nanoseconds of CLOCK_MONOTONIC — the clock of
   * `process.hrtime.bigint()` — so a listener can measure its own lateness
   * (with `time: 'virtual'`, of the virtual clock, from 0). NaN at Infinity
   * speed, in a step or burst, and for backfill.
   */
  deadline: number;
  /** The pass (loop) it belongs to, from 0. */
  pass: number;
  /** Delivered ahead of the position as the last of its type and topic (the `backfill` option). */
  backfill: boolean;
}

export interface DeliveryOptions {
  /** Decode payloads with msgpackr (default true). */
  decode?: boolean;
  /** Also give the payload bytes as `payloadBytes` (default false). */
  rawPayload?: boolean;
}

/** Layout in crates/netreplay-node/src/delivery.rs. */
const RECORD_HEADER_BYTES = 44;

// Records are plain msgpack maps and arrays: no records/structures extension.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

export function decodePayload(bytes: Uint8Array): unknown {
  return unpackr.unpack(bytes);
}

// A small payload is decoded from a copy at the start of one scratch
// buffer: a view a record costs a Buffer and a DataView (msgpackr keeps one
// a source), more than the copy; and decoded in place, at an offset into the
// batch, msgpackr would take it for a large source and leave its small-source
// paths (its key cache among them). Bins are copied out of the scratch
// buffer (copyBuffers) since it is overwritten by the next record.
const SCRATCH_BYTES = 4096;
const scratch = Buffer.alloc(SCRATCH_BYTES);
const scratchUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, copyBuffers: true });

/** The msgpack payload at [start, end) of a batch. */
function decodePayloadAt(batch: Buffer, start: number, end: number): unknown {
  const length = end - start;
  if (length > SCRATCH_BYTES) return unpackr.unpack(batch.subarray(start, end));
  batch.copy(scratch, 0, start, end);
  return scratchUnpackr.unpack(scratch, length);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeJson(bytes: Uint8Array): unknown {
  return JSON.parse(utf8.decode(bytes));
}

/** What a native stream's payloads are, beyond its type: absent for MCL (msgpack, elapsed times only). */
export interface StreamFormat {
  /** The MCAP message encoding, or `bytes` for a capture. */
  encoding: string;
  /** What elapsed time 0 stands for, ns since the epoch. */
  timeBaseNs: bigint;
}

/** The formats of a native reader's streams, by stream id (undefined: MCL). */
export function streamFormatsOf(streams: readonly { encoding?: string | null; timeBaseNs: bigint }[]): (StreamFormat | undefined)[] {
  return streams.map((s) => (s.encoding ? { encoding: s.encoding, timeBaseNs: s.timeBaseNs } : undefined));
}

/**
 * The decoder of payloads in `encoding`: msgpack for MCL and `msgpack`,
 * JSON for `json`; null for every other encoding, whose payload is its bytes.
 */
export function payloadDecoder(encoding: string | undefined): ((bytes: Uint8Array) => unknown) | null {
  if (encoding === undefined || encoding === 'msgpack') return decodePayload;
  if (encoding === 'json') return decodeJson;
  return null;
}

/** `message` with the time and encoding its stream's format gives (in place). */
export function withFormat<M extends LoggedMessage>(message: M, format: StreamFormat | undefined): M {
  if (format) {
    message.timeNs = format.timeBaseNs + BigInt(Math.round(message.elapsedTime * 1e9));
    message.encoding = format.encoding;
  }
  return message;
}

/** A logged record as a message: payload decoded as its stream's encoding says (throws if it does not decode). */
export function loggedMessage(
  record: { elapsedTime: number; topic: string; payload: Uint8Array },
  type: string | null,
  format: StreamFormat | undefined,
): LoggedMessage {
  const decode = payloadDecoder(format?.encoding);
  const message: LoggedMessage = {
    elapsedTime: record.elapsedTime,
    topic: record.topic,
    type,
    payload: decode ? decode(record.payload) : record.payload,
    payloadBytes: record.payload,
  };
  return withFormat(message, format);
}

/** What a batch decoded to: its messages, and the error that cut it short. */
export interface DecodedBatch {
  messages: Message[];
  /** Under `onError: 'fail'`: the first payload msgpackr could not decode; `messages` holds those before it. */
  error?: MalformedRecordError;
}

/** Turns native batches into messages; keeps the topic table across batches. */
export class BatchDecoder {
  readonly #topics: string[] = [];
  readonly #types: readonly (string | null)[];
  readonly #decode: boolean;
  readonly #raw: boolean;
  readonly #skip: boolean;
  /** Deadlines are of a virtual clock: lateness is 0. */
  readonly #virtual: boolean;
  /** Records dropped because their payload did not decode (`onError: 'skip'`). */
  skipped = 0;

  readonly #formats: readonly (StreamFormat | undefined)[];
  readonly #decoders: (((bytes: Uint8Array) => unknown) | null)[];

  /**
   * @param streamTypes each stream's type (a JS reader's grow as it is read)
   * @param formats the native streams' formats (none: all MCL)
   */
  constructor(
    streamTypes: readonly (string | null)[],
    options: DeliveryOptions & { onError?: 'fail' | 'skip'; virtualTime?: boolean },
    formats: readonly (StreamFormat | undefined)[] = [],
  ) {
    this.#types = streamTypes;
    this.#formats = formats;
    this.#decoders = formats.map((f) => payloadDecoder(f?.encoding));
    this.#virtual = options.virtualTime ?? false;
    this.#decode = options.decode ?? true;
    this.#raw = options.rawPayload ?? false;
    this.#skip = options.onError === 'skip';
  }

  /** Extend the topic table with a batch's new topics (ids count up from 0). */
  addTopics(newTopics: readonly string[]): void {
    for (const t of newTopics) this.#topics.push(t);
  }

  /**
   * Decode a batch. Never throws: a payload that does not decode (msgpackr
   * refuses, for example, extension types it does not know, though the
   * native MCL reader has checked it is one msgpack value; an MCAP `json`
   * payload may not parse) is skipped and counted, or ends the batch with
   * an error, as `onError` says.
   */
  decode(data: Buffer, count: number, newTopics: readonly string[], arrivedAtNs: number): DecodedBatch {
    this.addTopics(newTopics);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const messages: Message[] = [];
    // Fields read once, not once a record: a private field is a keyed load.
    const topics = this.#topics;
    const types = this.#types;
    const formats = this.#formats;
    const virtual = this.#virtual;
    const raw = this.#raw;
    let at = 0;
    for (let i = 0; i < count; i++) {
      const elapsedTime = view.getFloat64(at, true);
      const deadline = view.getFloat64(at + 16, true);
      const lateness = Number.isNaN(deadline) || virtual ? 0 : (arrivedAtNs - deadline) / 1e9;
      const stream = view.getUint32(at + 24, true);
      const topic = topics[view.getUint32(at + 28, true)] ?? '';
      const pass = view.getUint32(at + 32, true);
      const backfill = (view.getUint32(at + 36, true) & 1) === 1;
      const length = view.getUint32(at + 40, true);
      const start = at + RECORD_HEADER_BYTES;
      const end = start + length;
      at = end;
      const type = types[stream] ?? null;
      const format = formats[stream];
      // A view of the payload is made only for who needs one: the caller
      // (rawPayload), a decoder other than msgpack's, an undecodable record.
      let bytes: Buffer | undefined;
      let payload: unknown;
      if (this.#decode) {
        const decode = format ? this.#decoders[stream] : decodePayload;
        try {
          if (decode === decodePayload) payload = decodePayloadAt(data, start, end);
          else payload = decode ? decode((bytes = data.subarray(start, end))) : (bytes = data.subarray(start, end));
        } catch (err) {
          if (this.#skip) {
            this.skipped++;
            continue;
          }
          const view = data.subarray(start, end);
          return { messages, error: undecodable(elapsedTime, topic, type, format?.encoding ?? 'msgpack', view, err) };
        }
      }
      const message: Message = { elapsedTime, topic, type, payload, lateness, deadline, pass, backfill };
      if (raw) message.payloadBytes = bytes ?? data.subarray(start, end);
      messages.push(format ? withFormat(message, format) : message);
    }
    return { messages };
  }
}

/** The error of a payload that does not decode as its encoding. */
export function undecodable(
  elapsedTime: number,
  topic: string,
  type: string | null,
  encoding: string,
  bytes: Uint8Array,
  err: unknown,
): MalformedRecordError {
  const hex = Buffer.from(bytes.subarray(0, 40)).toString('hex') + (bytes.length > 40 ? '…' : '');
  return new MalformedRecordError({
    code: 'ERR_NETREPLAY_MALFORMED',
    message:
      `the payload of the record at ${elapsedTime} s (type ${type ?? 'None'}, topic ${JSON.stringify(topic)}) ` +
      `does not decode as ${encoding}: ${(err as Error)?.message ?? String(err)}: '${hex}'`,
    snippet: hex,
  });
}
