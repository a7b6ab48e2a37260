// ScheduleBroadcasts: plays a BufferData's queue with the original timing.
// The timing is native (a scheduler thread); this layer only decodes batches
// and emits them.
import { EventEmitter } from 'node:events';
import { native, type NativeScheduler, type SchedulerOptionsJs, type SchedulerStats } from './native.js';
import { callNative } from './errors.js';
import { BatchDecoder, type DeliveryOptions, type Message } from './message.js';
import { BatchReceiver, KeepAlive, weakCallback } from './delivery.js';
import { BufferData, BufferQueue, nativeBuffer, queueOwner, readerError } from './buffer.js';
import { checkNonNegativeSeconds, checkOnError, checkOptions, checkSpeed, optionNames } from './validate.js';
import { UDP_OPTION_NAMES, udpMapEntries, type UdpOptions, type UdpStats } from './net.js';

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
   * Waits for a deadline up to this many seconds are spun through whole
   * instead of slept (default 0). Every longer wait sleeps until the spin
   * margin before its deadline and spins the rest (see `spinMargin`), so a
   * busyWait is only worth it where even that margin's rare misses matter
   * more than a core: waits up to busyWait keep the scheduler's core busy.
   */
  busyWait?: number;
  /**
   * Seconds before each deadline the scheduler stops sleeping and spins.
   * Default: learned as it plays — a running high quantile (≈ p99.4) of
   * how late this thread's sleeps wake, from 5 µs to 2 ms (it starts at
   * 200 µs), published as `stats().spinMargin`. A fixed value (0 to 0.1 s)
   * trades CPU for timing by hand: CPU ≈ margin × rate.
   */
  spinMargin?: number;
  /**
   * Whether the native scheduler thread waits in the real-time class (Linux
   * SCHED_FIFO at priority 1, the lowest: above every normal thread, below
   * any other real-time one) while a timed replay plays, so that busy
   * threads cannot delay it: woken, it runs at once. 'auto' (default): when
   * the process may (CAP_SYS_NICE, or `ulimit -r` of 1 or more) and has two
   * CPUs or more, else the normal class; true: required, the replay fails
   * with the reason if refused; false: never. Never at speed Infinity or on
   * a virtual clock, where nothing waits. `stats().realtime` says which.
   */
  realtime?: boolean | 'auto';
  /**
   * A payload that msgpackr cannot decode (for example an extension type it
   * does not know): 'fail' (default) ends the replay with a
   * MalformedRecordError after the messages before it; 'skip' drops it and
   * counts it in `stats().skipped`. (Payloads that are not msgpack at all
   * are caught by the reader, with file and line: see ReadFile's onError.)
   */
  onError?: 'fail' | 'skip';
  /**
   * When JS falls behind (its pending bound is reached): 'wait' (default)
   * slows the replay down and loses nothing; 'drop' drops what JS cannot
   * take and counts it in `stats().dropped`, so other sinks (UDP) keep their
   * timing. The UDP sink has its own (`udp.lag`).
   */
  lag?: 'wait' | 'drop';
}

export const SCHEDULE_OPTION_NAMES = optionNames<ScheduleOptions>()(
  'speed',
  'maxPendingBatches',
  'udp',
  'js',
  'busyWait',
  'spinMargin',
  'realtime',
  'onError',
  'lag',
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

export type { SchedulerStats };

/** Deliveries handed to JS and not yet consumed. */
export interface PendingDeliveries {
  batches: number;
  messages: number;
  bytes: number;
}

/**
 * The engine's statistics, and the payloads the JS side skipped. `lateness`
 * is measured where records are delivered: on their arrival in JS with JS
 * delivery, else at the engine's handover (which `handoverLateness` always
 * gives); the UDP sink's send lateness is in `udpStats()`.
 */
export interface ReplayStats extends SchedulerStats {
  /** Records dropped because msgpackr could not decode their payload (`onError: 'skip'`). */
  skipped: number;
}

export class ScheduleBroadcasts extends EventEmitter<ScheduleEvents> {
  readonly #native: NativeScheduler;
  readonly #receiver: BatchReceiver;
  readonly #buffer: BufferData;
  readonly #keepAlive = new KeepAlive(this);
  #closed = false;

  constructor(queue: BufferQueue | BufferData, options?: ScheduleOptions) {
    super();
    const opts = checkOptions(options, 'options', SCHEDULE_OPTION_NAMES);
    const speed = opts.speed === undefined ? undefined : checkSpeed(opts.speed);
    const buffer =
      queue instanceof BufferData ? queue : queue instanceof BufferQueue ? queue[queueOwner] : undefined;
    if (!buffer) throw new TypeError("ScheduleBroadcasts: 'queue' must be a BufferData or its queue");
    this.#buffer = buffer;
    const decoder = new BatchDecoder(
      buffer.streamTypes,
      { ...(opts as DeliveryOptions), onError: checkOnError(opts.onError) },
      buffer.streamFormats,
    );
    const nativeOptions = deliveryOptions(opts, speed);
    this.#receiver = new BatchReceiver(() => this.#native, decoder, {
      messages: (messages, ack) => {
        ack();
        if (this.listenerCount('message') > 0) for (const m of messages) this.emit('message', m);
      },
      undecodable: () => callNative(() => this.#native.stop()),
      ended: (event, err) => {
        this.#keepAlive.hold(false);
        if (event === 'end') this.emit('end');
        // With no listener, EventEmitter throws: as for any stream.
        else this.emit('error', err!);
      },
      ...(nativeOptions.udp !== undefined && {
        udpFailures: (s: UdpStats) => {
          if (this.listenerCount('udpFailures') > 0) this.emit('udpFailures', s);
        },
      }),
      readerError: () => buffer[readerError],
    });
    const onBatch = weakCallback(this.#receiver);
    this.#native = callNative(
      () =>
        new native.NativeScheduler(buffer[nativeBuffer], nativeOptions, onBatch),
    );
  }

  get buffer(): BufferData {
    return this.#buffer;
  }

  /** Start or resume; false if already running, or if the run has ended (until the buffer is reset). */
  start(): boolean {
    const started = callNative(() => this.#native.start());
    if (started) this.#keepAlive.hold(true);
    return started;
  }

  /** Stop (pause) keeping the position and the record in hand; false if not running. */
  stop(): boolean {
    const stopped = callNative(() => this.#native.stop());
    this.#keepAlive.hold(false);
    return stopped;
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

  /** Engine statistics (see ReplayStats); `skipped`: payloads that did not decode. */
  stats(): ReplayStats {
    return { ...callNative(() => this.#native.stats()), skipped: this.#receiver.decoder.skipped };
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
    this.#receiver.closed = true;
    this.#keepAlive.hold(false);
    callNative(() => this.#native.close());
  }
}

/** UdpOptions as the binding takes them (`map` as a list of entries). */
function nativeUdp({ map, ...rest }: UdpOptions): SchedulerOptionsJs['udp'] {
  return { ...rest, ...(map !== undefined && { map: udpMapEntries(map) }) };
}

/** `realtime` as the native option names it. */
function realtimeOption(value: unknown): 'on' | 'off' | 'auto' {
  if (value === true) return 'on';
  if (value === false) return 'off';
  if (value === 'auto') return 'auto';
  throw new TypeError(`'realtime' must be true, false or 'auto', got ${typeof value === 'string' ? `'${value}'` : String(value)}`);
}

/** The native delivery options of ScheduleOptions (types checked; core checks values and sets defaults). */
export function deliveryOptions(opts: ScheduleOptions, speed: number | undefined): SchedulerOptionsJs {
  if (opts.js !== undefined && typeof opts.js !== 'boolean') {
    throw new TypeError(`'js' must be a boolean, got ${typeof opts.js}`);
  }
  if (opts.lag !== undefined && typeof opts.lag !== 'string') {
    throw new TypeError(`'lag' must be 'wait' or 'drop', got ${typeof opts.lag}`);
  }
  const udp = opts.udp === undefined ? undefined : (checkOptions(opts.udp, 'udp', UDP_OPTION_NAMES) as UdpOptions);
  return {
    ...(speed !== undefined && { speed }),
    ...(typeof opts.maxPendingBatches === 'number' && { maxPendingBatches: opts.maxPendingBatches }),
    ...(udp !== undefined && { udp: nativeUdp(udp) }),
    ...(opts.js === false && { js: false }),
    ...(opts.busyWait !== undefined && { busyWait: checkNonNegativeSeconds(opts.busyWait, 'busyWait') }),
    ...(opts.spinMargin !== undefined && { spinMargin: checkNonNegativeSeconds(opts.spinMargin, 'spinMargin') }),
    ...(opts.lag !== undefined && { lag: opts.lag }),
    ...(opts.realtime !== undefined && { realtime: realtimeOption(opts.realtime) }),
  };
}
