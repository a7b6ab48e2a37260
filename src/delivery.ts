// Receiving the engine's batches in JS, for ScheduleBroadcasts and Replay
// alike: stale runs dropped, lateness measured on arrival, payloads decoded,
// the end and errors reported — and the event loop held open while playing.
import type { ErrorInfo } from './native.js';
import { translateError } from './errors.js';
import type { BatchDecoder, Message } from './message.js';
import type { UdpStats } from './net.js';

/** What the receiver needs of the native object that sends the batches. */
export interface BatchSource {
  /** The current run; a batch of another run is stale. */
  readonly run: number;
  ack(records: number, bytes: number): void;
  /** Record lateness at the JS sink: the batch arrived at `arrivedNs`. */
  handed(data: Buffer, arrivedNs: number): void;
  udpStats(): UdpStats | null;
}

/** What the owner does with what arrives. */
export interface BatchHandlers {
  /** Messages of the current run; `ack` once they are consumed. */
  messages(messages: Message[], ack: () => void): void;
  /** A payload did not decode: the run must end here (stop the engine). */
  undecodable(): void;
  /** The run ended: the data's end, or an error. */
  ended(event: 'end' | 'error', err: Error | undefined): void;
  /** The run paused itself: a step, playUntil or advance reached its goal. */
  paused?(): void;
  /** A timeline event: 'loop' (the pass beginning) or 'clock' (logical seconds). */
  timeline?(event: 'loop' | 'clock', value: number): void;
  /** UDP sends failed since the last report (with `udp` and a listener). */
  udpFailures?(stats: UdpStats): void;
  /** The error a JS reader threw, to report it as itself. */
  readerError?(): Error | undefined;
}

/** Process time in ns on CLOCK_MONOTONIC, the clock of the engine's deadlines. */
function nowNs(): number {
  return Number(process.hrtime.bigint());
}

export class BatchReceiver {
  closed = false;
  /** The run a payload that did not decode has ended; its later batches are dropped. */
  #failedRun = -1;
  #reportedFailures = 0;

  constructor(
    readonly source: () => BatchSource,
    readonly decoder: BatchDecoder,
    readonly handlers: BatchHandlers,
  ) {}

  receive(data: Buffer, count: number, topics: string[], event: string | null, error: ErrorInfo | null, run: number): void {
    const arrived = nowNs();
    const source = this.source();
    const ack = () => source.ack(count, data.byteLength);
    if (this.closed || run !== source.run || run === this.#failedRun) {
      // Closed: batches queued before close() are not emitted. A stale or
      // failed run's batch is dropped, but its new topics are not: the
      // native topic table outlives runs and never sends a topic twice.
      this.decoder.addTopics(topics);
      ack();
      return;
    }
    // Decoded even when no one listens: the topic table must stay in step.
    const decoded = count > 0 ? this.decoder.decode(data, count, topics, arrived) : { messages: [] };
    if (decoded.error) {
      // This run ends here, as it would at a malformed line of the log.
      this.#failedRun = run;
      this.handlers.undecodable();
      event = 'error';
      error = null;
    }
    try {
      this.handlers.messages(decoded.messages, ack);
      // After the messages went out: the measurement costs them nothing.
      if (count > 0) source.handed(data, arrived);
      if (this.handlers.udpFailures) {
        const s = source.udpStats();
        if (s && s.sendFailures > this.#reportedFailures) {
          this.#reportedFailures = s.sendFailures;
          this.handlers.udpFailures(s);
        }
      }
      if ((event === 'loop' || event === 'clock') && count === 0 && data.byteLength >= 8) {
        this.handlers.timeline?.(event, data.readDoubleLE(0));
      } else if (event === 'paused') {
        this.handlers.paused?.();
      } else if (event === 'end' || event === 'error') {
        const err =
          event === 'error'
            ? (decoded.error ?? this.handlers.readerError?.() ?? (error ? translateError(error) : undefined))
            : undefined;
        this.handlers.ended(event, err);
      }
    } catch (err) {
      // A listener threw: rethrow outside this native callback, as uncaught.
      queueMicrotask(() => {
        throw err;
      });
    }
  }
}

/**
 * The callback to give the native object: it holds the receiver weakly. The
 * native object holds its callback strongly, so were the callback to hold
 * its owner, neither could ever be collected (a replay dropped without
 * close() would keep its files open for good); a playing replay is held by
 * KeepAlive instead. Made here, in a scope of its own: a closure made in
 * the owner's constructor would share its context, and hold `this`.
 */
export function weakCallback(receiver: BatchReceiver): BatchReceiver['receive'] {
  const ref = new WeakRef(receiver);
  return (...batch) => ref.deref()?.receive(...batch);
}

// A ref'd handle keeps Node alive while a replay plays: the native callback
// itself is weak, so a replay that is paused or done never holds the process.
const KEEP_ALIVE_MS = 2 ** 31 - 1;
/** Replays playing now: held here so that one nobody references plays on. */
const playing = new Set<object>();

/** Holds the event loop open, and its owner alive, while `hold(true)`. */
export class KeepAlive {
  #timer: NodeJS.Timeout | undefined;

  constructor(readonly owner: object) {}

  hold(on: boolean): void {
    if (on) playing.add(this.owner);
    else playing.delete(this.owner);
    if (on && this.#timer === undefined) this.#timer = setInterval(() => {}, KEEP_ALIVE_MS);
    if (!on && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
