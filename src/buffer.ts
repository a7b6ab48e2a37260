// BufferData: a bounded native ring kept full by a producer — a native thread
// for netreplay's readers, an event-loop pump for readers written in JS.
import { packr } from './pack.js';
import { native, type NativeBuffer } from './native.js';
import { callNative, translateError } from './errors.js';
import { loggedMessage, streamFormatsOf, type LoggedMessage, type StreamFormat } from './message.js';
import { checkRecordReader, nativeReaderOf, type RecordReader } from './reader.js';
import { checkOptions, checkPositiveInteger, optionNames } from './validate.js';

export interface BufferOptions {
  /** Ring capacity in records (default 5000, at most 1048576). */
  length?: number;
  /** Ring capacity in payload bytes, counted as the buffers' capacity (default 256 MiB). */
  maxBytes?: number;
}

export const BUFFER_OPTION_NAMES = optionNames<BufferOptions>()('length', 'maxBytes');

/** The native ring options (types checked; core checks the range and sets the defaults). */
export function ringOptions(opts: BufferOptions): { length?: number; maxBytes?: number } {
  return {
    ...(opts.length !== undefined && { length: checkPositiveInteger(opts.length, 'length', 2 ** 32 - 1) }),
    ...(opts.maxBytes !== undefined && {
      maxBytes: checkPositiveInteger(opts.maxBytes, 'maxBytes', Number.MAX_SAFE_INTEGER),
    }),
  };
}

/** Module-internal access to the native buffer. */
export const nativeBuffer = Symbol('nativeBuffer');
/** Module-internal access from a queue to its BufferData. */
export const queueOwner = Symbol('queueOwner');
/** Module-internal: the error a JS reader threw, to report it as itself. */
export const readerError = Symbol('readerError');

/** Records pushed per event-loop turn by the JS pump. */
const PUMP_CHUNK = 1024;

/** The ring, seen from its consumer side. */
export class BufferQueue {
  readonly #buffer: BufferData;
  #ended = false;

  /** @internal */
  constructor(buffer: BufferData) {
    this.#buffer = buffer;
  }

  /** Records (and end marker) held now. */
  get size(): number {
    return this.#buffer[nativeBuffer].size;
  }
  get capacity(): number {
    return this.#buffer[nativeBuffer].capacity;
  }
  /** Payload bytes held now. */
  get bytes(): number {
    return this.#buffer[nativeBuffer].bytes;
  }
  get maxBytes(): number {
    return this.#buffer[nativeBuffer].maxBytes;
  }
  /** True once the end marker has been taken with get(). */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Take the next message when no ScheduleBroadcasts consumes this queue:
   * null when the ring is empty or the end was reached; throws the reader's
   * error if one was met.
   */
  get(): LoggedMessage | null {
    const slot = callNative(() => this.#buffer[nativeBuffer].pop());
    if (slot === null) return null;
    if (slot.kind === 'end') {
      this.#ended = true;
      return null;
    }
    if (slot.kind === 'error') {
      this.#ended = true;
      throw translateError(slot.error);
    }
    const r = slot.record!;
    return loggedMessage(r, this.#buffer.streamTypes[r.stream] ?? null, this.#buffer.streamFormats[r.stream]);
  }

  /** @internal The BufferData this queue belongs to. */
  get [queueOwner](): BufferData {
    return this.#buffer;
  }

  /** @internal */
  rewound(): void {
    this.#ended = false;
  }
}


export class BufferData {
  readonly #native: NativeBuffer;
  readonly #js: JsPump | undefined;
  readonly #queue: BufferQueue;
  /** Message type of each stream id used in the ring. */
  readonly streamTypes: (string | null)[];
  /** The native streams' encodings and time bases (none: MCL or a JS reader). */
  readonly streamFormats: readonly (StreamFormat | undefined)[];

  constructor(reader: RecordReader, options?: BufferOptions) {
    const opts = checkOptions(options, 'options', BUFFER_OPTION_NAMES);
    const nativeOptions = ringOptions(opts);
    const nativeReader = nativeReaderOf(checkRecordReader(reader, 'BufferData'));
    if (nativeReader) {
      this.streamTypes = nativeReader.streams.map((s) => s.messageType ?? null);
      this.streamFormats = streamFormatsOf(nativeReader.streams);
      this.#native = callNative(() => native.NativeBuffer.fromReader(nativeReader, nativeOptions));
    } else {
      this.streamTypes = [];
      this.streamFormats = [];
      this.#native = callNative(() => native.NativeBuffer.external(nativeOptions));
      this.#js = new JsPump(reader, this.#native, this.streamTypes);
    }
    this.#queue = new BufferQueue(this);
  }

  /** @internal */
  get [nativeBuffer](): NativeBuffer {
    return this.#native;
  }

  /** @internal */
  get [readerError](): Error | undefined {
    return this.#js?.error;
  }

  get queue(): BufferQueue {
    return this.#queue;
  }

  get length(): number {
    return this.#native.capacity;
  }

  /** Start (or resume) buffering; false if already buffering. */
  start(): boolean {
    return this.#js ? this.#js.start() : callNative(() => this.#native.start());
  }

  /** Stop buffering, keeping position and every record read; false if not buffering. */
  stop(): boolean {
    return this.#js ? this.#js.stop() : callNative(() => this.#native.stop());
  }

  /**
   * Stop, and release the reader's files, descriptors and mappings at once
   * instead of at garbage collection (Replay.close() does this). Safe to
   * call twice; start() and reset() afterwards throw ReplayStateError.
   */
  close(): void {
    if (this.#js) this.#js.stop();
    else callNative(() => this.#native.close());
  }

  /** Stop, flush the ring and rewind the reader. */
  reset(): void {
    this.#js?.stop();
    callNative(() => this.#native.reset());
    this.#js?.rewind();
    this.#queue.rewound();
  }

  isAlive(): boolean {
    return this.#js ? this.#js.running : this.#native.isAlive();
  }

  /** True from start() until the reader is exhausted (false after reset()). */
  isDataPending(): boolean {
    return this.#js ? this.#js.dataPending : this.#native.isDataPending();
  }

  /** Latches true once the ring was full or the data exhausted; reset() clears it. */
  isReady(): boolean {
    return this.#js ? this.#js.ready : this.#native.isReady();
  }
}

const END = Symbol('end');
type Pending = { t: number; stream: number; topic: string; payload: Uint8Array } | typeof END | Error;

/**
 * Where a JS pump pushes: a native buffer's ring (true, or false when full)
 * or a player's, whose passes (window, loops, filters) answer more: a
 * record past the pass's end ('passEnded'), and at the end another pass
 * to read from the reader's start ('rewind').
 */
export interface PumpTarget {
  push(elapsedTime: number, stream: number, topic: string, payload: Uint8Array): boolean | string;
  pushEnd(error?: string | null): boolean | string;
  defineStream(messageType?: string | null): number;
  /** Push what the end left queued behind a full ring; true once all went. */
  pushQueued?(): boolean;
}

/** Feeds the ring from a JS reader on the event loop, in small chunks. */
export class JsPump {
  running = false;
  dataPending = false;
  ready = false;
  /** What the reader threw (the ring carries only its text). */
  error: Error | undefined;
  #ended = false;
  #pending: Pending | undefined;
  #timer: NodeJS.Immediate | NodeJS.Timeout | undefined;
  readonly #streamIds = new Map<string | null, number>();
  /** The end went in, but slots it queued wait for room in the ring. */
  #draining = false;

  /**
   * @param backfill the target keeps the records before a seek's position
   *   for backfill: a seek reads from the start instead of skipping here.
   */
  constructor(
    readonly reader: RecordReader,
    readonly ring: PumpTarget,
    readonly streamTypes: (string | null)[],
    readonly backfill = false,
  ) {}

  start(): boolean {
    if (this.running) return false;
    this.running = true;
    this.dataPending = !this.#ended || this.#pending !== undefined;
    this.#schedule(false);
    return true;
  }

  stop(): boolean {
    if (!this.running) return false;
    this.running = false;
    this.#cancel();
    return true;
  }

  /** Stop and rewind the reader (the owner has flushed the ring). */
  rewind(): void {
    this.stop();
    this.#pending = undefined;
    this.#ended = false;
    this.#draining = false;
    this.error = undefined;
    this.ready = false;
    this.dataPending = false;
    this.reader.reset();
  }

  /**
   * Stop and go to the first record with time >= t, read from the start (a
   * reader written in JS has no index); past the last record, to the last
   * records' time, as a native reader clamps. The owner has flushed the ring.
   */
  seek(t: number): void {
    this.rewind();
    // The target drops what comes before t, and keeps it for backfill.
    if (this.backfill) return;
    let last: number | undefined;
    for (;;) {
      const p = this.#read();
      if (p === END || p instanceof Error) {
        if (p instanceof Error || last === undefined || last >= t) {
          this.#hold(p);
          return;
        }
        // Past the end: clamp to the time of the last records.
        this.rewind();
        t = last;
        last = undefined;
        continue;
      }
      if (p.t >= t) {
        this.#pending = p;
        return;
      }
      last = p.t;
    }
  }

  /** `t`, or past the last record the time of the last one, as a native reader clamps a seek. */
  clampTarget(t: number): number {
    this.rewind();
    let last: number | undefined;
    for (;;) {
      const p = this.#read();
      if (p === END || p instanceof Error) break;
      if (p.t >= t) {
        last = undefined;
        break;
      }
      last = p.t;
    }
    this.rewind();
    return last ?? t;
  }

  #hold(p: Pending): void {
    this.#pending = p;
    if (p instanceof Error) this.error = p;
    if (p === END || p instanceof Error) this.#ended = true;
  }

  #cancel(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer as NodeJS.Timeout);
      clearImmediate(this.#timer as NodeJS.Immediate);
      this.#timer = undefined;
    }
  }

  #schedule(full: boolean): void {
    this.#cancel();
    // A full ring drains at the replay's pace: poll it gently.
    // Not unref'd: an unref'd immediate only runs when something else wakes the loop.
    this.#timer = full ? setTimeout(() => this.#pump(), 1) : setImmediate(() => this.#pump());
  }

  #read(): Pending {
    let raw: unknown;
    try {
      raw = this.reader.read();
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
    if (raw === null || raw === undefined) return END;
    return this.#convert(raw);
  }

  #convert(raw: unknown): Pending {
    if (typeof raw !== 'object') return new TypeError(`reader.read() returned a ${typeof raw}, not a message object`);
    const r = raw as Record<string, unknown>;
    const t = r.elapsedTime ?? r.elapsed_time;
    if (typeof t !== 'number' || !Number.isFinite(t)) {
      return new TypeError(`reader.read() returned a message without a finite 'elapsedTime' (got ${String(t)})`);
    }
    const topic = r.topic === undefined || r.topic === null ? '' : String(r.topic);
    const type = typeof r.type === 'string' ? r.type : null;
    let stream = this.#streamIds.get(type);
    if (stream === undefined) {
      // Defined natively too, so that UDP routes by type apply to it.
      const id = callNative(() => this.ring.defineStream(type));
      this.streamTypes[id] = type;
      this.#streamIds.set(type, id);
      stream = id;
    }
    let payload: Uint8Array;
    // The ring holds msgpack: bytes of another encoding (an MCAP json or cdr
    // message, a datagram read through ReadMcap/ReadPcap) go as their payload, packed.
    const msgpackBytes = r.encoding === undefined || r.encoding === 'msgpack';
    if (r.payloadBytes instanceof Uint8Array && msgpackBytes) payload = r.payloadBytes;
    else {
      try {
        payload = packr.pack(r.payload ?? r.message ?? null);
      } catch (err) {
        return new TypeError(`reader.read() returned a payload msgpackr cannot encode: ${(err as Error).message}`);
      }
    }
    return { t, stream, topic, payload };
  }

  #pump(): void {
    this.#timer = undefined;
    if (this.#draining) {
      if (!this.ring.pushQueued?.()) return this.#schedule(true);
      this.#draining = false;
    }
    for (let n = 0; this.running; n++) {
      if (n === PUMP_CHUNK) return this.#schedule(false);
      if (this.#pending === undefined) {
        if (this.#ended) {
          this.running = false;
          return;
        }
        this.#hold(this.#read());
      }
      const p = this.#pending!;
      const pushed =
        p === END
          ? this.ring.pushEnd(null)
          : p instanceof Error
            ? this.ring.pushEnd(`${p.name}: ${p.message}`)
            : this.ring.push(p.t, p.stream, p.topic, p.payload);
      if (pushed === false || pushed === 'full') {
        this.ready = true;
        return this.#schedule(true);
      }
      if (pushed === 'passEnded') {
        // Past the pass's end: the pass ends here, as at the reader's end.
        this.#hold(END);
        continue;
      }
      if (pushed === 'rewind') {
        // Another pass: read the reader again from its start.
        this.#pending = undefined;
        this.#ended = false;
        this.reader.reset();
        continue;
      }
      this.#pending = undefined;
      if (this.#ended && pushed === 'ended' && this.ring.pushQueued && !this.ring.pushQueued()) {
        this.#draining = true;
        return this.#schedule(true);
      }
      if (this.#ended) {
        this.dataPending = false;
        this.ready = true;
      }
    }
  }
}
