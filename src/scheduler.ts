// ScheduleBroadcasts: plays a BufferData's queue with the original timing.
// The timing is native (a scheduler thread); this layer only decodes batches
// and emits them.
import { EventEmitter } from 'node:events';
import { native, type ErrorInfo, type NativeScheduler, type SchedulerStats } from './native.js';
import { callNative, translateError } from './errors.js';
import { BatchDecoder, type DeliveryOptions, type Message } from './message.js';
import { BufferData, BufferQueue, nativeBuffer, queueOwner, readerError } from './buffer.js';
import { checkBusyWait, checkOnError, checkOptions, checkSpeed, optionNames } from './validate.js';
import { UDP_OPTION_NAMES, type UdpOptions, type UdpStats } from './net.js';

export interface ScheduleOptions extends DeliveryOptions {
  /** Speed factor: > 0, or Infinity for as fast as possible (default 1). */
  speed?: number;
  /**
   * Most batches handed to JS and not yet consumed (default 1024). Whatever
   * the batches, at most 8192 messages and 8 MiB of them are pending: a
   * consumer that falls behind slows the replay (it shows as lateness)
   * instead of growing memory.
   */
  maxPendingBatches?: number;
  /**
   * Also broadcast every record over UDP in MCL's wire format, sent from the
   * native scheduler thread at its deadline (see UdpOptions).
   */
  udp?: UdpOptions;
  /**
   * Deliver records to JS ('message' events, iteration); default true. With
   * false (a UDP-only replay) 'end' and 'error' are still reported.
   */
  js?: boolean;
  /**
   * Waits for a deadline up to this many seconds are spun through instead of
   * slept. Sleeps occasionally wake milliseconds late (about 1 in 1000 on a
   * VM), so spinning gives the best timing at high rates, at the cost of the
   * scheduler's core. Default: 0.0015 with `js: false` (native sinks only:
   * rates above ~700 Hz keep a core busy), 0 with JS delivery, where a
   * spinning thread would delay the JS thread it wakes. With 0, every wait
   * sleeps until its last 250 µs (about a quarter of a core at 1 kHz).
   * Longer waits always sleep, spinning only their last 4% (250 µs to 2 ms).
   */
  busyWait?: number;
  /**
   * A payload that msgpackr cannot decode (for example an extension type it
   * does not know): 'fail' (default) ends the replay with a
   * MalformedRecordError after the messages before it; 'skip' drops it and
   * counts it in `stats().skipped`. (Payloads that are not msgpack at all
   * are caught by the reader, with file and line: see ReadFile's onError.)
   */
  onError?: 'fail' | 'skip';
}

export const SCHEDULE_OPTION_NAMES = optionNames<ScheduleOptions>()(
  'speed',
  'maxPendingBatches',
  'udp',
  'js',
  'busyWait',
  'onError',
  'decode',
  'rawPayload',
);

export interface ScheduleEvents {
  message: [Message];
  /** The data was exhausted and every message emitted. */
  end: [];
  error: [Error];
  /**
   * UDP sends failed (counted, the replay goes on unless `failOnError`):
   * the sink's statistics, checked as batches arrive and at the end.
   */
  udpFailures: [UdpStats];
}

/** What a batch of the engine brings (see delivery.rs). */
export type BatchEvent = 'end' | 'error' | 'stopped' | null;

/** Owners (Replay) hook here to see every batch before the events go out. */
export interface BatchObserver {
  messages(messages: Message[], ack: () => void): void;
  event(event: 'end' | 'error', error: Error | undefined): void;
}

export type { SchedulerStats };

/** Deliveries handed to JS and not yet consumed. */
export interface PendingDeliveries {
  batches: number;
  messages: number;
  bytes: number;
}

/** The engine's statistics, and the payloads the JS side skipped. */
export interface ReplayStats extends SchedulerStats {
  /** Records dropped because msgpackr could not decode their payload (`onError: 'skip'`). */
  skipped: number;
}

// A ref'd handle keeps Node alive while a replay plays: the native callback
// itself is weak, so a replay that is paused or done never holds the process.
const KEEP_ALIVE_MS = 2 ** 31 - 1;
/** Schedulers playing now: held here so that a replay nobody references plays on. */
const playing = new Set<ScheduleBroadcasts>();

export class ScheduleBroadcasts extends EventEmitter<ScheduleEvents> {
  readonly #native: NativeScheduler;
  readonly #decoder: BatchDecoder;
  readonly #buffer: BufferData;
  #observer: BatchObserver | undefined;
  #keepAlive: NodeJS.Timeout | undefined;
  /** Batches of runs before this one belong to a rewound replay: dropped. */
  #firstLiveRun = 0;
  /** The run a payload that did not decode has ended, whose later batches are dropped. */
  #failedRun = -1;
  #closed = false;
  readonly #udp: boolean;
  #reportedFailures = 0;

  constructor(queue: BufferQueue | BufferData, options?: ScheduleOptions) {
    super();
    const opts = checkOptions(options, 'options', SCHEDULE_OPTION_NAMES);
    const speed = opts.speed === undefined ? 1 : checkSpeed(opts.speed);
    const buffer =
      queue instanceof BufferData ? queue : queue instanceof BufferQueue ? queue[queueOwner] : undefined;
    if (!buffer) throw new TypeError("ScheduleBroadcasts: 'queue' must be a BufferData or its queue");
    this.#buffer = buffer;
    this.#decoder = new BatchDecoder(buffer.streamTypes, {
      ...(opts as DeliveryOptions),
      onError: checkOnError(opts.onError),
    });
    if (opts.js !== undefined && typeof opts.js !== 'boolean') {
      throw new TypeError(`'js' must be a boolean, got ${typeof opts.js}`);
    }
    const udp = opts.udp === undefined ? undefined : (checkOptions(opts.udp, 'udp', UDP_OPTION_NAMES) as UdpOptions);
    this.#udp = udp !== undefined;
    const nativeOptions = {
      speed,
      ...(typeof opts.maxPendingBatches === 'number' && { maxPendingBatches: opts.maxPendingBatches }),
      ...(udp !== undefined && { udp }),
      ...(opts.js === false && { js: false }),
      ...(opts.busyWait !== undefined && { busyWait: checkBusyWait(opts.busyWait) }),
    };
    // The native object holds its callback strongly: were the callback to
    // hold this object, neither could ever be collected (a replay dropped
    // without close() would keep its files open for good). So it holds it
    // weakly, and a playing replay is kept alive by `playing` instead.
    const self = new WeakRef(this);
    this.#native = callNative(
      () =>
        new native.NativeScheduler(buffer[nativeBuffer], nativeOptions, (data, count, topics, event, error, run) => {
          const scheduler = self.deref();
          if (scheduler) scheduler.#onBatch(data, count, topics, event, error, run);
        }),
    );
  }

  /** @internal Replay observes batches to drive its iterator and state. */
  observe(observer: BatchObserver): void {
    this.#observer = observer;
  }

  get buffer(): BufferData {
    return this.#buffer;
  }

  /** Start or resume; false if already running, or if the run has ended (until the buffer is reset). */
  start(): boolean {
    const started = callNative(() => this.#native.start());
    if (started) this.#hold(true);
    return started;
  }

  /** Stop (pause) keeping the position and the record in hand; false if not running. */
  stop(): boolean {
    const stopped = callNative(() => this.#native.stop());
    this.#hold(false);
    return stopped;
  }

  /** @internal Forget the position and drop batches still on their way. */
  rewind(): void {
    callNative(() => this.#native.rewind());
    this.#firstLiveRun = this.#native.run + 1;
  }

  isAlive(): boolean {
    return this.#native.isAlive();
  }

  get speed(): number {
    return callNative(() => this.#native.speed);
  }

  /** Change speed; a running replay continues from its current logical time. */
  set speed(value: number) {
    const speed = checkSpeed(value);
    callNative(() => {
      this.#native.speed = speed;
    });
  }

  /** Engine statistics: delivered, late, and handover lateness (seconds); `skipped`: payloads that did not decode. */
  stats(): ReplayStats {
    return { ...callNative(() => this.#native.stats()), skipped: this.#decoder.skipped };
  }

  /** What JS holds unconsumed now: batches, messages and bytes (see maxPendingBatches). */
  pending(): PendingDeliveries {
    return callNative(() => this.#native.pending());
  }

  /** Statistics of the UDP sink (datagrams, bytes, failures by kind, send lateness in seconds); null without `udp`. */
  udpStats(): UdpStats | null {
    return callNative(() => this.#native.udpStats());
  }

  /** Stop the thread and release the queue; safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#hold(false);
    callNative(() => this.#native.close());
  }

  #hold(on: boolean): void {
    if (on) playing.add(this);
    else playing.delete(this);
    if (on && this.#keepAlive === undefined) this.#keepAlive = setInterval(() => {}, KEEP_ALIVE_MS);
    if (!on && this.#keepAlive !== undefined) {
      clearInterval(this.#keepAlive);
      this.#keepAlive = undefined;
    }
  }

  #onBatch(
    data: Buffer,
    count: number,
    topics: string[],
    event: string | null,
    error: ErrorInfo | null,
    run: number,
  ): void {
    const ack = () => this.#native.ack(count, data.byteLength);
    if (this.#closed || run < this.#firstLiveRun || run === this.#failedRun) {
      // Closed: batches queued before close() are not emitted.
      // A rewound or failed run's batch is dropped, but its new topics are
      // not: the native topic table outlives runs and never sends a topic twice.
      this.#decoder.addTopics(topics);
      ack();
      return;
    }
    // Decode even when no one listens: the topic table must stay in step.
    const decoded = count > 0 ? this.#decoder.decode(data, count, topics) : { messages: [] };
    const messages = decoded.messages;
    if (decoded.error) {
      // This run ends here, as it would at a malformed line of the log.
      this.#failedRun = run;
      callNative(() => this.#native.stop());
      event = 'error';
      error = null;
    }
    try {
      if (this.#observer) this.#observer.messages(messages, ack);
      else ack();
      if (this.listenerCount('message') > 0) for (const m of messages) this.emit('message', m);
      if (this.#udp && this.listenerCount('udpFailures') > 0) {
        const s = this.#native.udpStats();
        if (s && s.sendFailures > this.#reportedFailures) {
          this.#reportedFailures = s.sendFailures;
          this.emit('udpFailures', s);
        }
      }
      if (event === 'end' || event === 'error') {
        this.#hold(false);
        const err =
          event === 'error'
            ? (decoded.error ?? this.#buffer[readerError] ?? (error ? translateError(error) : undefined))
            : undefined;
        this.#observer?.event(event, err);
        if (event === 'end') this.emit('end');
        // Unobserved with no listener, EventEmitter throws: as for any stream.
        else if (this.listenerCount('error') > 0 || !this.#observer) this.emit('error', err!);
      }
    } catch (err) {
      // A listener threw: rethrow outside this native callback, as uncaught.
      queueMicrotask(() => {
        throw err;
      });
    }
  }
}
