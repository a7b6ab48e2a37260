// The network side: UDP broadcast options of a replay, a Listener for MCL
// datagrams, and MCL log writers (WriteFile, record()). Sockets, fragment
// reassembly and file writing are native; this layer decodes and emits.
import { EventEmitter } from 'node:events';
import {
  native,
  type ListenerStatsJs,
  type NativeListener,
  type NativeRecorder,
  type NativeWriteFile,
  type ReceivedJs,
  type UdpStatsJs,
} from './native.js';
import { callNative } from './errors.js';
import { decodePayload } from './message.js';
import { packr } from './pack.js';
import { checkOptions, checkPath, optionNames } from './validate.js';

/** A route of the UDP sink: records of a message type and/or topic go to `destination`. */
export interface UdpRoute {
  /** Message type (the log's `>>> Type`); omitted: any type. */
  type?: string;
  /** Topic; omitted: any topic. */
  topic?: string;
  /** `udp://host:port` (IPv4, `[IPv6]`, unicast or multicast). */
  destination: string;
}

/** Broadcasting a replay over UDP, in MCL's wire format, from the scheduler thread. */
export interface UdpOptions {
  /** Where records that match no route go (e.g. `udp://127.0.0.1:26000`). */
  destination?: string;
  /** Precedence: type and topic, then topic, then type, then `destination`. */
  routes?: UdpRoute[];
  /** Multicast TTL / hop limit, 0..255 (default 3, as MCL). */
  hopLimit?: number;
  /** TTL / hop limit of unicast datagrams (default: the system's). */
  unicastHops?: number;
  /** Outgoing multicast interface: name (`eth0`), index, or (IPv4) address. */
  interface?: string;
  /** Loop multicast back to listeners on this host (default true). */
  multicastLoop?: boolean;
  /** Largest datagram in bytes, 64..65507 (default 60000); larger payloads are fragmented. */
  mtu?: number;
  /** Send topics and fragments as msgpack "raw", byte for byte as MCL under Python 2 (default false). */
  legacyEncoding?: boolean;
  /** Check each payload is one msgpack value before sending (default true). */
  validatePayload?: boolean;
  /** SO_SNDBUF in bytes (default: the system's). */
  sendBufferBytes?: number;
  /** Longest wait for room in a full socket buffer, seconds (default 1); then the send counts as failed. */
  sendTimeout?: number;
  /** End the replay with an error at the first send failure (default false: count and go on). */
  failOnError?: boolean;
  /**
   * When a datagram cannot be sent at once (the socket's buffer is full):
   * 'wait' (default) waits for room, up to `sendTimeout`, and the replay
   * slows down; 'drop' drops it and counts it in the replay's
   * `stats().dropped`, so the other sinks keep their timing.
   */
  lag?: 'wait' | 'drop';
  /**
   * Send each payload as it is, one datagram (at most 65507 bytes), not as
   * an MCL datagram: a capture's UDP payloads. Default: true when every
   * input is a capture (ReadPcap), else false.
   */
  raw?: boolean;
  /**
   * Route each message by the address its topic names (a capture's
   * original destination `ip:port`): `map`, then `destination` (all to one
   * place), then that address itself. Default: with `raw` and no `routes`.
   */
  byAddress?: boolean;
  /**
   * Rewrites of original destinations: `'10.0.0.2:26000'` (exact) or
   * `'*:26000'` (any address on that port) → `'udp://host:port'`. An exact
   * address wins over a port. Implies `byAddress`.
   */
  map?: Readonly<Record<string, string>> | ReadonlyMap<string, string>;
}

export const UDP_OPTION_NAMES = optionNames<UdpOptions>()(
  'destination',
  'routes',
  'hopLimit',
  'unicastHops',
  'interface',
  'multicastLoop',
  'mtu',
  'legacyEncoding',
  'validatePayload',
  'sendBufferBytes',
  'sendTimeout',
  'failOnError',
  'lag',
  'raw',
  'byAddress',
  'map',
);

/** `map` as the binding takes it: [{ original, destination }]. */
export function udpMapEntries(map: unknown): { original: string; destination: string }[] {
  const entries = map instanceof Map ? [...map.entries()] : typeof map === 'object' && map !== null ? Object.entries(map) : null;
  if (entries === null) throw new TypeError(`'udp.map' must be an object or a Map of 'ip:port' → 'udp://host:port'`);
  return entries.map(([original, destination]) => {
    if (typeof original !== 'string' || typeof destination !== 'string') {
      throw new TypeError(`'udp.map' entries must be strings ('ip:port' or '*:port' → 'udp://host:port')`);
    }
    return { original, destination };
  });
}

/** Statistics of a replay's UDP sink (lateness in seconds, against the deadline). */
export type UdpStats = UdpStatsJs;
/** Statistics of a Listener or recording. */
export type ListenerStats = ListenerStatsJs;

/** A message received by a Listener. */
export interface ReceivedMessage<P = unknown> {
  topic: string;
  /** The payload decoded with msgpackr (undefined with `decode: false`). */
  payload: P;
  /** The payload's msgpack bytes as they crossed the network. */
  payloadBytes: Buffer;
  /** `payload.name` when the payload is a map with a string `name` (MCL's typed messages), else null. */
  type: string | null;
  /** Nanoseconds of CLOCK_MONOTONIC (the clock of `process.hrtime.bigint()`) when it arrived. */
  receivedAt: number;
  /** Sender, `host:port`. */
  source: string;
  /** Index in `addresses` of the address it came in on. */
  address: number;
  /** 1 for a whole datagram, else the number of fragments it was joined from. */
  fragments: number;
}

export interface ListenerOptions {
  /** Decode payloads with msgpackr (default true). */
  decode?: boolean;
  /** Interface for multicast groups: name, index, or (IPv4) address. */
  interface?: string;
  /** SO_REUSEADDR (default: on for multicast, off for unicast). */
  reuseAddress?: boolean;
  /** SO_RCVBUF in bytes (MCL advises 2 MB). */
  recvBufferBytes?: number;
  /** Seconds an incomplete fragmented message is kept (default 2). */
  reassemblyTimeout?: number;
  /** Incomplete fragmented messages kept at once (default 64). */
  maxPending?: number;
  /** Bytes of fragments kept at once (default 64 MiB). */
  maxReassemblyBytes?: number;
  /** Most batches JS has not yet processed; beyond, messages are dropped and counted (default 64). */
  maxPendingBatches?: number;
}

const LISTENER_OPTION_NAMES = optionNames<ListenerOptions>()(
  'decode',
  'interface',
  'reuseAddress',
  'recvBufferBytes',
  'reassemblyTimeout',
  'maxPending',
  'maxReassemblyBytes',
  'maxPendingBatches',
);

export interface ListenerEvents {
  message: [ReceivedMessage];
  error: [Error];
  close: [];
}

const KEEP_ALIVE_MS = 2 ** 31 - 1;

/** A ref'd handle: keeps Node alive while a socket listens, as dgram does. */
class KeepAlive {
  #timer: NodeJS.Timeout | undefined = setInterval(() => {}, KEEP_ALIVE_MS);
  ref(): void {
    this.#timer?.ref();
  }
  unref(): void {
    this.#timer?.unref();
  }
  clear(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

function messageType(payload: unknown): string | null {
  if (typeof payload === 'object' && payload !== null && !Array.isArray(payload) && !(payload instanceof Uint8Array)) {
    const name = (payload as { name?: unknown }).name;
    if (typeof name === 'string') return name;
  }
  return null;
}

function checkAddresses(value: unknown, who: string): string[] {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0 || !list.every((a) => typeof a === 'string')) {
    throw new TypeError(`${who}: 'addresses' must be a udp:// URL or a non-empty array of them`);
  }
  return list as string[];
}

/**
 * Receives MCL datagrams on one or more `udp://` addresses (joining
 * multicast groups), reassembles fragments natively and emits 'message'.
 */
export class Listener extends EventEmitter<ListenerEvents> {
  readonly #native: NativeListener;
  readonly #decode: boolean;
  readonly #keepAlive: KeepAlive;
  #closed = false;

  constructor(addresses: string | string[], options?: ListenerOptions) {
    super();
    const list = checkAddresses(addresses, 'Listener');
    const opts = checkOptions(options, 'options', LISTENER_OPTION_NAMES) as ListenerOptions;
    this.#decode = opts.decode ?? true;
    this.#native = callNative(
        () =>
          new native.NativeListener(
            {
              addresses: list,
              ...(opts.interface !== undefined && { interface: opts.interface }),
              ...(opts.reuseAddress !== undefined && { reuseAddress: opts.reuseAddress }),
              ...(opts.recvBufferBytes !== undefined && { recvBufferBytes: opts.recvBufferBytes }),
              ...(opts.reassemblyTimeout !== undefined && { reassemblyTimeout: opts.reassemblyTimeout }),
              ...(opts.maxPending !== undefined && { maxPending: opts.maxPending }),
              ...(opts.maxReassemblyBytes !== undefined && { maxReassemblyBytes: opts.maxReassemblyBytes }),
              ...(opts.maxPendingBatches !== undefined && { maxPendingBatches: opts.maxPendingBatches }),
            },
            (messages) => this.#onMessages(messages),
          ),
      );
    this.#keepAlive = new KeepAlive();
  }

  /** The bound addresses as `host:port` (the actual port where port 0 was asked), in order. */
  get addresses(): string[] {
    return this.#native.localAddresses;
  }

  /** `udp://` URLs of the bound addresses (handy for port 0). */
  get urls(): string[] {
    return this.addresses.map((a) => `udp://${a}`);
  }

  /** Datagrams, messages, garbage, drops and reassembly counts. */
  stats(): ListenerStats {
    return callNative(() => this.#native.stats());
  }

  /** Let Node exit while this listener is open. */
  unref(): this {
    this.#keepAlive.unref();
    return this;
  }

  ref(): this {
    this.#keepAlive.ref();
    return this;
  }

  /** Stop the thread and close the sockets; safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#keepAlive.clear();
    callNative(() => this.#native.stop());
    this.emit('close');
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #onMessages(batch: ReceivedJs[]): void {
    try {
      for (const m of batch) {
        let payload: unknown;
        if (this.#decode) {
          try {
            payload = decodePayload(m.payload);
          } catch (err) {
            // The native decoder checked the framing; the payload itself may still be odd.
            payload = undefined;
            if (this.listenerCount('error') > 0) this.emit('error', err as Error);
          }
        }
        this.emit('message', {
          topic: m.topic,
          payload,
          payloadBytes: m.payload,
          type: messageType(payload),
          receivedAt: m.receivedAt,
          source: m.source,
          address: m.address,
          fragments: m.fragments,
        });
      }
    } catch (err) {
      queueMicrotask(() => {
        throw err;
      });
    } finally {
      this.#native.ack(1);
    }
  }
}

export interface WriteFileOptions {
  /** `>>> Type` of the header; omitted or null: `None` (raw data). */
  type?: string | null;
  /** The header's revision (MCL: a git hash; default empty). */
  revision?: string;
  /** The header's `created` (default: now, UTC, as MCL writes it). */
  created?: string;
  /** Entries per file; beyond, a new part `<prefix>_NNN.log` starts. */
  maxEntries?: number;
  /** Seconds per file; beyond, a new part starts. */
  maxTime?: number;
  /** Blank header lines as `# ` (MCL's typed fixture logs) instead of `#`. */
  legacyHeader?: boolean;
  /** Buffer whole lines until this many bytes wait (default 0: write each line at once). */
  flushBytes?: number;
  /** fsync each file before renaming it to `.log`. */
  syncOnClose?: boolean;
}

const WRITE_FILE_OPTION_NAMES = optionNames<WriteFileOptions>()(
  'type',
  'revision',
  'created',
  'maxEntries',
  'maxTime',
  'legacyHeader',
  'flushBytes',
  'syncOnClose',
);

/**
 * MCL's WriteFile: writes `<prefix>.log` (or `<prefix>_000.log`, … when
 * splitting), as `.tmp` until finished. Nothing is created before the first write.
 */
export class WriteFile implements Disposable {
  readonly #native: NativeWriteFile;

  constructor(prefix: string, options?: WriteFileOptions) {
    checkPath(prefix, 'prefix');
    const o = checkOptions(options, 'options', WRITE_FILE_OPTION_NAMES) as WriteFileOptions;
    this.#native = callNative(
      () =>
        new native.NativeWriteFile(prefix, {
          ...(typeof o.type === 'string' && { messageType: o.type }),
          ...(o.revision !== undefined && { revision: o.revision }),
          ...(o.created !== undefined && { created: o.created }),
          ...(o.maxEntries !== undefined && { maxEntries: o.maxEntries }),
          ...(o.maxTime !== undefined && { maxTime: o.maxTime }),
          ...(o.legacyHeader !== undefined && { legacyHeader: o.legacyHeader }),
          ...(o.flushBytes !== undefined && { flushBytes: o.flushBytes }),
          ...(o.syncOnClose !== undefined && { syncOnClose: o.syncOnClose }),
        }),
    );
  }

  /**
   * Write one record. `payload` is msgpack bytes (a Uint8Array, written as
   * is) or any other value (encoded with msgpackr).
   */
  write(elapsedTime: number, topic: string, payload: unknown): void {
    if (typeof elapsedTime !== 'number') throw new TypeError(`'elapsedTime' must be a number of seconds`);
    if (typeof topic !== 'string') throw new TypeError(`'topic' must be a string`);
    const bytes = payload instanceof Uint8Array ? payload : packr.pack(payload);
    callNative(() => this.#native.write(elapsedTime, topic, bytes));
  }

  flush(): void {
    callNative(() => this.#native.flush());
  }

  /** Records written so far. */
  get entries(): number {
    return this.#native.entries;
  }

  /** The `.tmp` file being written, if any. */
  get currentPath(): string | null {
    return this.#native.currentPath ?? null;
  }

  /** Finish every file (`.tmp` → `.log`); returns the files written. Safe to call twice. */
  close(): string[] {
    return callNative(() => this.#native.close());
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** One address of a recording and what is recorded from it. */
export interface RecordSource {
  /** `udp://` URL to listen on. */
  url: string;
  /** The message type sent there (`>>> Type` of its files); omitted: raw (`None`). */
  type?: string;
  /** File prefix in the recording directory (default: the type, or `None`). */
  name?: string;
}

export interface RecordOptions {
  /** Where the recording directory `<YYYYmmddTHHMMSS>_<host>` is created (must exist). */
  root?: string;
  /** Write into exactly this directory instead (created if missing). */
  directory?: string;
  /** Entries per file before a new part starts. */
  maxEntries?: number;
  /** Seconds per file before a new part starts. */
  maxTime?: number;
  revision?: string;
  legacyHeader?: boolean;
  /** Interface for multicast groups. */
  interface?: string;
  reuseAddress?: boolean;
  recvBufferBytes?: number;
  reassemblyTimeout?: number;
  /**
   * 'mcl' (default): MCL logs, one file set per source; 'mcap': one
   * `recording.mcap` in the directory (one channel per type and topic,
   * encoding msgpack, log time = receive time in epoch ns, chunked, with a
   * summary and chunk index at stop; a killed recording keeps every chunk
   * written, at most 1 s of traffic behind).
   */
  format?: 'mcl' | 'mcap';
  /** MCAP only: chunk compression (default 'zstd'). */
  compression?: 'zstd' | 'lz4' | 'none';
  /** MCAP only: uncompressed bytes per chunk (default 1 MiB). */
  chunkSize?: number;
}

const RECORD_OPTION_NAMES = optionNames<RecordOptions>()(
  'format',
  'compression',
  'chunkSize',
  'root',
  'directory',
  'maxEntries',
  'maxTime',
  'revision',
  'legacyHeader',
  'interface',
  'reuseAddress',
  'recvBufferBytes',
  'reassemblyTimeout',
);

export interface RecordingSummary {
  directory: string;
  /** Every file written (`.log`, or the one `.mcap`). */
  files: string[];
  /** Messages that could not be written. */
  writeErrors: number;
  stats: ListenerStats;
}

/** A running network recording (MCL's LogNetwork); see record(). */
export class Recording {
  readonly #native: NativeRecorder;
  readonly #keepAlive: KeepAlive;
  #summary: RecordingSummary | undefined;

  /** @internal */
  constructor(sources: RecordSource[], options: RecordOptions) {
    this.#native = callNative(
        () =>
          new native.NativeRecorder(
            sources.map((s) => ({
              url: s.url,
              ...(s.type !== undefined && { messageType: s.type }),
              ...(s.name !== undefined && { name: s.name }),
            })),
            options,
          ),
      );
    this.#keepAlive = new KeepAlive();
  }

  /** The recording directory. */
  get directory(): string {
    return this.#native.directory;
  }

  /** The bound addresses as `host:port`, in the order of the sources. */
  get addresses(): string[] {
    return this.#native.localAddresses;
  }

  stats(): ListenerStats {
    return callNative(() => this.#native.stats());
  }

  unref(): this {
    this.#keepAlive.unref();
    return this;
  }

  /** Stop listening and finish every file; returns what was written. Safe to call twice. */
  stop(): RecordingSummary {
    if (this.#summary) return this.#summary;
    this.#keepAlive.clear();
    this.#summary = callNative(() => this.#native.stop());
    return this.#summary;
  }
}

/**
 * Record network traffic into a recording directory: each source's address
 * into its own MCL file set, all with one time origin (or, with `format:
 * 'mcap'`, all into one MCAP file).
 * Sources are `udp://` URLs (raw), `Type=udp://…` strings or RecordSource objects.
 */
export function record(sources: (string | RecordSource)[] | string | RecordSource, options: RecordOptions): Recording {
  const list = Array.isArray(sources) ? sources : [sources];
  if (list.length === 0) throw new TypeError("record: 'sources' must name at least one udp:// address");
  const parsed = list.map((s): RecordSource => {
    if (typeof s === 'string') return parseSource(s);
    if (typeof s !== 'object' || s === null || typeof s.url !== 'string') {
      throw new TypeError("record: each source must be a 'udp://…' string, 'Type=udp://…', or {url, type?, name?}");
    }
    return s;
  });
  const opts = checkOptions(options, 'options', RECORD_OPTION_NAMES) as RecordOptions;
  if (opts.root === undefined && opts.directory === undefined) {
    throw new TypeError("record: 'options.root' (or 'options.directory') is required");
  }
  return new Recording(parsed, opts);
}

/** `udp://…` or `Type=udp://…`. */
export function parseSource(text: string): RecordSource {
  const eq = text.indexOf('=');
  if (eq > 0 && !text.slice(0, eq).includes('://')) {
    return { type: text.slice(0, eq), url: text.slice(eq + 1) };
  }
  return { url: text };
}
