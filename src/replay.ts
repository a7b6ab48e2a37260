// Replay: a log played back with its original timing. The playback itself
// is core's Player (native/NativePlayer); this layer adds events, async
// iteration and a done promise, nothing of timing.
import { EventEmitter } from 'node:events';
import { BUFFER_OPTION_NAMES, JsPump, ringOptions, type BufferOptions } from './buffer.js';
import { BatchReceiver, KeepAlive, weakCallback } from './delivery.js';
import { callNative, ReplayStateError } from './errors.js';
import { BatchDecoder, type DeliveryOptions, type Message } from './message.js';
import { native, type NativePlayer } from './native.js';
import {
  READ_DIRECTORY_OPTION_NAMES,
  checkRecordReader,
  nativeReaderOf,
  openLog,
  type ReadDirectoryOptions,
  type RecordReader,
} from './reader.js';
import {
  SCHEDULE_OPTION_NAMES,
  deliveryOptions,
  type PendingDeliveries,
  type ReplayStats,
  type ScheduleOptions,
} from './scheduler.js';
import { checkOnError, checkOptions, checkSpeed, optionNames, pick } from './validate.js';
import type { UdpStats } from './net.js';

export interface ReplayOptions extends ScheduleOptions, BufferOptions, ReadDirectoryOptions {
  /** Aborting it stops and closes the replay (`done` resolves). */
  signal?: AbortSignal;
}

export interface ReplayEvents {
  message: [Message];
  end: [];
  error: [Error];
  /** UDP sends failed (see ScheduleEvents). */
  udpFailures: [UdpStats];
}

const REPLAY_OPTION_NAMES = optionNames<ReplayOptions>()(
  ...SCHEDULE_OPTION_NAMES,
  ...BUFFER_OPTION_NAMES,
  ...READ_DIRECTORY_OPTION_NAMES,
  'signal',
);

type State = 'idle' | 'playing' | 'paused' | 'ended' | 'closed';

export class Replay extends EventEmitter<ReplayEvents> implements AsyncIterable<Message>, AsyncDisposable {
  readonly #native: NativePlayer;
  /** Feeds the player from a reader written in JS. */
  readonly #pump: JsPump | undefined;
  readonly #receiver: BatchReceiver;
  readonly #keepAlive = new KeepAlive(this);
  #state: State = 'idle';
  #done: Deferred | undefined;
  /**
   * Messages waiting for the async iterator, and per batch the messages of
   * it still queued and its ack. A batch is acknowledged once its last
   * message is taken, so what the iterator holds is what the engine counts
   * as pending: at most 8192 messages and 8 MiB (see maxPendingBatches).
   */
  #iterQueue: Message[] = [];
  #iterBatches: { left: number; ack: () => void }[] = [];
  #iterWaiter: (() => void) | undefined;
  #iterating = false;
  #error: Error | undefined;
  /** Stops listening to the abort signal (set when there is one). */
  #unlisten: (() => void) | undefined;

  /**
   * @param source a log path (file, split-set prefix or directory), a
   *   ReadFile/ReadDirectory, or any reader with read(), isDataPending() and reset().
   */
  constructor(source: string | RecordReader, options?: ReplayOptions) {
    super();
    const opts = checkOptions(options, 'options', REPLAY_OPTION_NAMES) as ReplayOptions;
    const reader =
      typeof source === 'string'
        ? openLog(source, pick(opts, READ_DIRECTORY_OPTION_NAMES))
        : checkRecordReader(source, 'Replay');
    const signal = opts.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new TypeError(`'signal' must be an AbortSignal, got ${typeof signal}`);
    }
    const schedule = pick(opts, SCHEDULE_OPTION_NAMES) as ScheduleOptions;
    const nativeOptions = {
      buffer: ringOptions(pick(opts, BUFFER_OPTION_NAMES)),
      schedule: deliveryOptions(schedule, schedule.speed === undefined ? undefined : checkSpeed(schedule.speed)),
    };
    const nativeReader = nativeReaderOf(reader);
    const streamTypes: (string | null)[] = nativeReader ? nativeReader.streams.map((s) => s.messageType ?? null) : [];
    const decoder = new BatchDecoder(streamTypes, {
      ...(schedule as DeliveryOptions),
      onError: checkOnError(schedule.onError),
    });
    this.#receiver = new BatchReceiver(() => this.#native, decoder, {
      messages: (messages, ack) => this.#onMessages(messages, ack),
      // The run ends here: the engine stops (and rewinds) at once.
      undecodable: () => callNative(() => this.#native.stop()),
      ended: (event, err) => this.#onEnded(event, err),
      ...(nativeOptions.schedule.udp !== undefined && {
        udpFailures: (s: UdpStats) => {
          if (this.listenerCount('udpFailures') > 0) this.emit('udpFailures', s);
        },
      }),
      readerError: () => this.#pump?.error,
    });
    const onBatch = weakCallback(this.#receiver);
    this.#native = callNative(() =>
      nativeReader
        ? native.NativePlayer.fromReader(nativeReader, nativeOptions, onBatch)
        : native.NativePlayer.external(nativeOptions, onBatch),
    );
    if (!nativeReader) this.#pump = new JsPump(reader, this.#native, streamTypes);
    if (signal !== undefined) {
      if (signal.aborted) this.close();
      else {
        const onAbort = () => this.close();
        signal.addEventListener('abort', onAbort, { once: true });
        this.#unlisten = () => signal.removeEventListener('abort', onAbort);
      }
    }
  }

  /** Play, or resume after pause(); after the end, play again from the start. False if already playing. */
  start(): boolean {
    this.#checkOpen();
    if (this.#state === 'playing') return false;
    if (this.#state !== 'paused') this.#done ??= new Deferred();
    this.#error = undefined;
    if (this.#state === 'ended') {
      // This replay has seen the end: play again from the start. (A run the
      // engine has ended but whose end is still on its way is not restarted:
      // native start() does nothing then, and the end follows.)
      this.#pump?.rewind();
      callNative(() => this.#native.restart());
    } else callNative(() => this.#native.start());
    this.#pump?.start();
    this.#state = 'playing';
    this.#keepAlive.hold(true);
    return true;
  }

  /** Freeze the replay where it is; start() continues at once. False if not playing. */
  pause(): boolean {
    this.#checkOpen();
    if (this.#state !== 'playing') return false;
    callNative(() => this.#native.pause());
    this.#state = 'paused';
    this.#keepAlive.hold(false);
    return true;
  }

  /** Stop and rewind to the first message. False if it was neither playing nor paused. */
  stop(): boolean {
    this.#checkOpen();
    const was = this.#state === 'playing' || this.#state === 'paused';
    callNative(() => this.#native.stop());
    this.#pump?.rewind();
    this.#dropQueued();
    this.#state = 'idle';
    this.#keepAlive.hold(false);
    this.#finish();
    return was;
  }

  /**
   * Go to `time` (seconds, as the log's elapsed times): the next message is
   * the first at or after it, delivered at once, and the timing goes on from
   * there; what was queued is dropped. A time before the first message or
   * after the last one goes to that message. Playing, the replay plays on;
   * paused, it stays paused; otherwise the next start() plays from there.
   */
  seek(time: number): void {
    this.#checkOpen();
    if (typeof time !== 'number' || Number.isNaN(time)) {
      throw new TypeError(`seek: 'time' must be a number of seconds, got ${typeof time === 'number' ? 'NaN' : typeof time}`);
    }
    // Infinite times clamp to the log's ends like any time outside it.
    const t = Math.max(-9e9, Math.min(9e9, time));
    callNative(() => this.#native.seek(t));
    this.#dropQueued();
    if (this.#pump) {
      this.#pump.seek(t);
      if (this.#state === 'playing' || this.#state === 'paused') this.#pump.start();
    }
    if (this.#state === 'ended') this.#state = 'idle';
  }

  /** True while playing. */
  isAlive(): boolean {
    return this.#state === 'playing' && this.#native.state === 'playing';
  }

  /** True while messages remain to be played in this run. */
  isDataPending(): boolean {
    return this.#state !== 'ended' && this.#state !== 'closed';
  }

  get speed(): number {
    return this.#native.speed;
  }

  set speed(value: number) {
    const speed = checkSpeed(value);
    callNative(() => {
      this.#native.speed = speed;
    });
  }

  /** Statistics of the current run (lateness in seconds; see ReplayStats). */
  stats(): ReplayStats {
    return { ...callNative(() => this.#native.stats()), skipped: this.#receiver.decoder.skipped };
  }

  /** What JS holds unconsumed now: batches, messages and bytes. */
  pending(): PendingDeliveries {
    return callNative(() => this.#native.pending());
  }

  /** Statistics of the UDP sink (with the `udp` option), else null. */
  udpStats(): UdpStats | null {
    return callNative(() => this.#native.udpStats());
  }

  /** Resolves when the replay ends (or is stopped or closed); rejects on a replay error. */
  get done(): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (!this.#done) return Promise.resolve();
    return this.#done.promise;
  }

  /** Stop everything and free the native threads; safe to call twice. */
  close(): void {
    if (this.#state === 'closed') return;
    this.#unlisten?.();
    this.#receiver.closed = true;
    this.#pump?.stop();
    this.#keepAlive.hold(false);
    callNative(() => this.#native.close());
    this.#state = 'closed';
    this.#finish();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  /**
   * Iterate the messages as they are played; starts the replay if needed.
   * Leaving the loop early pauses the replay, or closes it when the loop
   * started it.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Message, void, undefined> {
    if (this.#iterating) throw new ReplayStateError('this replay is already being iterated');
    this.#iterating = true;
    let startedHere = false;
    try {
      if (this.#state === 'idle' || this.#state === 'ended') startedHere = this.start();
      for (;;) {
        const m = this.#iterQueue.shift();
        if (m !== undefined) {
          this.#taken();
          yield m;
          continue;
        }
        this.#releaseAcks();
        if (this.#error) throw this.#error;
        if (this.#state !== 'playing' && this.#state !== 'paused') return;
        await new Promise<void>((resolve) => (this.#iterWaiter = resolve));
      }
    } finally {
      this.#iterating = false;
      this.#iterQueue = [];
      this.#releaseAcks();
      // Left early (break, return, a throw in the loop body): a replay the
      // loop started is closed; one started before it is paused.
      if (this.#state === 'playing' || this.#state === 'paused') {
        if (startedHere) this.close();
        else this.pause();
      }
    }
  }

  #checkOpen(): void {
    if (this.#state === 'closed') throw new ReplayStateError('this replay is closed');
  }

  /** Drop what the iterator holds of a run that was rewound or moved. */
  #dropQueued(): void {
    this.#iterQueue = [];
    this.#releaseAcks();
  }

  #onMessages(messages: Message[], ack: () => void): void {
    if (!this.#iterating || messages.length === 0) {
      ack();
    } else {
      for (const m of messages) this.#iterQueue.push(m);
      // Backpressure: the batch stays unacknowledged until the iterator has
      // taken its last message, so the engine waits (shows as lag) instead
      // of memory growing.
      this.#iterBatches.push({ left: messages.length, ack });
      this.#wakeIterator();
    }
    if (this.listenerCount('message') > 0) for (const m of messages) this.emit('message', m);
  }

  #onEnded(event: 'end' | 'error', err: Error | undefined): void {
    this.#state = 'ended';
    this.#keepAlive.hold(false);
    if (event === 'error') {
      this.#error = err;
      this.#done?.reject(err!);
      this.#done = undefined;
      if (this.listenerCount('error') > 0) this.emit('error', err!);
    } else {
      this.#finish();
      this.emit('end');
    }
    this.#wakeIterator();
  }

  #finish(): void {
    this.#done?.resolve();
    this.#done = undefined;
    this.#wakeIterator();
  }

  /** The iterator took one message: acknowledge its batch if that was the last. */
  #taken(): void {
    const batch = this.#iterBatches[0];
    if (batch && --batch.left === 0) {
      this.#iterBatches.shift();
      batch.ack();
    }
  }

  /** Acknowledge every batch still held (the queue was emptied or dropped). */
  #releaseAcks(): void {
    for (const batch of this.#iterBatches.splice(0)) batch.ack();
  }

  #wakeIterator(): void {
    const wake = this.#iterWaiter;
    this.#iterWaiter = undefined;
    wake?.();
  }
}

class Deferred {
  resolve!: () => void;
  reject!: (err: Error) => void;
  readonly promise = new Promise<void>((resolve, reject) => {
    this.resolve = resolve;
    this.reject = reject;
  });

  constructor() {
    // A replay error is also reported through events and iterators: an
    // unobserved done promise must not crash the process.
    this.promise.catch(() => {});
  }
}
