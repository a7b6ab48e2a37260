// ReadPcap: the UDP datagrams of a pcap or pcapng capture, read natively.
import { native, type CaptureInfoJs, type NativeLogReader } from './native.js';
import { callNative } from './errors.js';
import type { LoggedMessage } from './message.js';
import { LogReader, nativeReaderOf, READ_OPTION_NAMES, type ReadOptions } from './reader.js';
import { checkOnError, checkOptions, checkPath, checkWindow, describe, optionNames } from './validate.js';

export interface PcapFilterOptions {
  /**
   * A BPF-style filter on the datagrams: `udp`, `ip`, `ip6`, `[src|dst]
   * host ADDR`, `[src|dst] port N`, `[src|dst] portrange A-B`, `and`/`&&`,
   * `or`/`||`, `not`/`!`, parentheses (e.g. `'udp dst port 26000 and src host 10.0.0.1'`).
   */
  filter?: string;
  /** Only datagrams to this destination port (or any of these). */
  dstPort?: number | readonly number[];
  /** Only datagrams from this source: `'10.0.0.1'` or `'10.0.0.1:5000'` (`'[::1]:5000'`). */
  src?: string;
}

export interface ReadPcapOptions extends ReadOptions, PcapFilterOptions {}

export const PCAP_FILTER_OPTION_NAMES = optionNames<PcapFilterOptions>()('filter', 'dstPort', 'src');
export const READ_PCAP_OPTION_NAMES = optionNames<ReadPcapOptions>()(...READ_OPTION_NAMES, ...PCAP_FILTER_OPTION_NAMES);

/** What a capture holds, counted when it was opened. */
export interface CaptureCounts {
  /** Frames (packet records or blocks) read. */
  frames: number;
  /** UDP datagrams that pass the filter: the messages. */
  datagrams: number;
  /** UDP datagrams the filter left out. */
  filtered: number;
  /** Frames that are not UDP over IPv4/IPv6 (TCP, ARP, ...). */
  notUdp: number;
  /** IPv4/IPv6 fragments (not reassembled). */
  fragments: number;
  /** Datagrams the capture's snaplen cut short. */
  truncated: number;
  /** Frames whose headers do not parse. */
  malformed: number;
  /** Frames of a link type not decoded. */
  linkType: number;
  /** pcapng simple packet blocks (no timestamp). */
  untimed: number;
}

/** A capture's datagram: `payload` (and `payloadBytes`) are its bytes. */
export interface CapturedMessage extends LoggedMessage<Uint8Array> {
  /** The original destination, `ip:port` (`[v6]:port`). */
  topic: string;
  type: null;
  payloadBytes: Uint8Array;
  /** The capture time, ns since the epoch (`baseNs` + the elapsed time). */
  timeNs: bigint;
  encoding: 'bytes';
}

/** Whether every stream of a native reader is a capture's (so its payloads are raw bytes). */
export function isCaptureOnly(reader: NativeLogReader): boolean {
  const captured = reader.captures.reduce((n, c) => n + c.destinations.length, 0);
  return reader.captures.length > 0 && captured === reader.streams.length;
}

function checkPort(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 65535) {
    throw new RangeError(`'dstPort' must be a port 0..65535 (or an array of them), got ${describe(value)}`);
  }
  return value;
}

/** The native filter options of PcapFilterOptions (types checked; core parses the filter). */
export function pcapFilterOptions(opts: PcapFilterOptions): { filter?: string; dstPorts?: number[]; src?: string } {
  if (opts.filter !== undefined && typeof opts.filter !== 'string') {
    throw new TypeError(`'filter' must be a string, got ${describe(opts.filter)}`);
  }
  if (opts.src !== undefined && typeof opts.src !== 'string') {
    throw new TypeError(`'src' must be a string (an IP address or ip:port), got ${describe(opts.src)}`);
  }
  const ports = opts.dstPort === undefined ? undefined : Array.isArray(opts.dstPort) ? opts.dstPort : [opts.dstPort];
  return {
    ...(opts.filter !== undefined && { filter: opts.filter }),
    ...(ports !== undefined && { dstPorts: ports.map(checkPort) }),
    ...(opts.src !== undefined && { src: opts.src }),
  };
}

/**
 * Reads the UDP datagrams of a pcap or pcapng file in capture order: topic =
 * the original destination `ip:port`, time = capture time − the first
 * frame's, payload = the UDP payload bytes. Other frames are skipped and
 * counted (`counts`).
 */
export class ReadPcap extends LogReader {
  // `skipped`: frames skipped for any reason but the filter, plus damage
  // skipped under `onError: 'skip'`.
  readonly #info: CaptureInfoJs;
  /** 'pcap' or 'pcapng'. */
  readonly format: 'pcap' | 'pcapng';
  /** The first frame's capture time, ns since the epoch (null: no frame). */
  readonly baseNs: bigint | null;
  /** The original destinations, one per stream. */
  readonly destinations: readonly string[];

  constructor(path: string, options?: ReadPcapOptions) {
    const opts = checkOptions(options, 'options', READ_PCAP_OPTION_NAMES) as ReadPcapOptions;
    const nativeOptions = {
      ...checkWindow(opts.minTime, opts.maxTime),
      onError: checkOnError(opts.onError),
      ...pcapFilterOptions(opts),
    };
    super(
      callNative(() => new native.NativeLogReader('pcap', checkPath(path), nativeOptions)),
      nativeOptions.onError,
    );
    this.#info = nativeReaderOf(this)!.captures[0]!;
    this.format = this.#info.format as 'pcap' | 'pcapng';
    this.baseNs = this.#info.baseNs ?? null;
    this.destinations = Object.freeze([...this.#info.destinations]);
  }

  /** The next datagram, or null at the end of the capture. */
  override read(): CapturedMessage | null {
    return super.read() as CapturedMessage | null;
  }

  /** What the capture holds, per reason. */
  get counts(): CaptureCounts {
    const { frames, datagrams, filtered, notUdp, fragments, truncated, malformed, linkType, untimed } = this.#info;
    return { frames, datagrams, filtered, notUdp, fragments, truncated, malformed, linkType, untimed };
  }

  /** Damage to the file's structure (a record cut short...), where reading stops; null if none. */
  get damage(): string | null {
    return this.#info.damage ?? null;
  }
}
