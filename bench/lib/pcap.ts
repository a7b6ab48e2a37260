// Classic libpcap files of Ethernet/IPv4/UDP datagrams (for tcpreplay), and a
// reader for them.
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';

/** Packet timestamps are written as this epoch (s) plus timeNs; tcpreplay only uses differences. */
export const PCAP_EPOCH_S = 1_700_000_000;
export const PCAP_SNAPLEN = 65535;
export const LINKTYPE_ETHERNET = 1;

const PCAP_HEADER_LEN = 24;
const RECORD_HEADER_LEN = 16;
const ETH_LEN = 14;
const IPV4_LEN = 20;
const UDP_LEN = 8;
const FRAME_OVERHEAD = ETH_LEN + IPV4_LEN + UDP_LEN;
/** Largest payload whose frame still fits the snaplen, so no packet is truncated. */
export const MAX_UDP_PAYLOAD = PCAP_SNAPLEN - FRAME_OVERHEAD;

const CHUNK_BYTES = 4 << 20;

export interface PcapPacketInput {
  /** Time relative to the schedule start, ns; written rounded to µs. */
  timeNs: number;
  payload: Uint8Array;
}

export interface WritePcapOptions {
  dstPort: number;
  /** Default: dstPort. */
  srcPort?: number;
  /** Default 127.0.0.1. */
  dstIp?: string;
  /** Default 127.0.0.1. */
  srcIp?: string;
}

/** The Internet checksum (RFC 1071) of `header`; over a header holding its own checksum it is 0. */
export function ipv4Checksum(header: Uint8Array): number {
  let sum = 0;
  const even = header.length & ~1;
  for (let i = 0; i < even; i += 2) sum += (header[i]! << 8) | header[i + 1]!;
  if (header.length & 1) sum += header[header.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function parseIpv4(ip: string): Uint8Array {
  const parts = ip.split('.');
  const bytes = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  if (bytes.length !== 4 || bytes.some((b) => !(b >= 0 && b <= 255))) throw new TypeError(`not an IPv4 address: ${ip}`);
  return Uint8Array.from(bytes);
}

function checkPort(name: string, port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`${name} must be an integer 0..65535, got ${port}`);
  return port;
}

/**
 * Write `packets` as a microsecond libpcap file of Ethernet + IPv4 (DF, TTL 64,
 * incrementing id) + UDP (no checksum) frames. Streams through a 4 MiB buffer,
 * so an iterable of millions of packets need not be held in memory.
 */
export function writePcap(path: string, packets: Iterable<PcapPacketInput>, opts: WritePcapOptions): void {
  const dstPort = checkPort('dstPort', opts.dstPort);
  const srcPort = checkPort('srcPort', opts.srcPort ?? opts.dstPort);
  const srcIp = parseIpv4(opts.srcIp ?? '127.0.0.1');
  const dstIp = parseIpv4(opts.dstIp ?? '127.0.0.1');

  // Fixed part of every frame; per packet only lengths, id and checksum change.
  const template = new Uint8Array(FRAME_OVERHEAD);
  const t = new DataView(template.buffer);
  t.setUint16(12, 0x0800); // ethertype IPv4; both MACs zero
  t.setUint8(ETH_LEN, 0x45); // version 4, IHL 5
  t.setUint16(ETH_LEN + 6, 0x4000); // DF, fragment offset 0
  t.setUint8(ETH_LEN + 8, 64); // TTL
  t.setUint8(ETH_LEN + 9, 17); // UDP
  template.set(srcIp, ETH_LEN + 12);
  template.set(dstIp, ETH_LEN + 16);
  const udpAt = ETH_LEN + IPV4_LEN;
  t.setUint16(udpAt, srcPort);
  t.setUint16(udpAt + 2, dstPort);

  const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  let used = 0;
  const fd = openSync(path, 'w');
  const flush = () => {
    let written = 0;
    while (written < used) written += writeSync(fd, buffer, written, used - written);
    used = 0;
  };
  try {
    view.setUint32(0, 0xa1b2c3d4, true);
    view.setUint16(4, 2, true);
    view.setUint16(6, 4, true);
    view.setInt32(8, 0, true); // thiszone
    view.setUint32(12, 0, true); // sigfigs
    view.setUint32(16, PCAP_SNAPLEN, true);
    view.setUint32(20, LINKTYPE_ETHERNET, true);
    used = PCAP_HEADER_LEN;

    let ipId = 0;
    for (const packet of packets) {
      const { timeNs, payload } = packet;
      if (!Number.isFinite(timeNs) || timeNs < 0) throw new RangeError(`packet timeNs must be a finite number ≥ 0, got ${timeNs}`);
      if (payload.length > MAX_UDP_PAYLOAD) throw new RangeError(`UDP payload of ${payload.length} bytes exceeds ${MAX_UDP_PAYLOAD}`);
      const frameLen = FRAME_OVERHEAD + payload.length;
      if (used + RECORD_HEADER_LEN + frameLen > CHUNK_BYTES) flush();

      const us = Math.round(timeNs / 1000);
      const seconds = Math.floor(us / 1e6);
      view.setUint32(used, PCAP_EPOCH_S + seconds, true);
      view.setUint32(used + 4, us - seconds * 1e6, true);
      view.setUint32(used + 8, frameLen, true);
      view.setUint32(used + 12, frameLen, true);
      used += RECORD_HEADER_LEN;

      buffer.set(template, used);
      const ip = used + ETH_LEN;
      view.setUint16(ip + 2, IPV4_LEN + UDP_LEN + payload.length);
      view.setUint16(ip + 4, ipId);
      ipId = (ipId + 1) & 0xffff;
      view.setUint16(ip + 10, ipv4Checksum(buffer.subarray(ip, ip + IPV4_LEN)));
      view.setUint16(used + udpAt + 4, UDP_LEN + payload.length);
      buffer.set(payload, used + FRAME_OVERHEAD);
      used += frameLen;
    }
    flush();
  } finally {
    closeSync(fd);
  }
}

export interface Ipv4Header {
  ihl: number;
  totalLength: number;
  id: number;
  /** The 3 flag bits (0b010 = DF). */
  flags: number;
  fragmentOffset: number;
  ttl: number;
  protocol: number;
  checksum: number;
  src: string;
  dst: string;
  /** The header bytes as stored (checksum included). */
  header: Uint8Array;
}

export interface UdpHeader {
  srcPort: number;
  dstPort: number;
  length: number;
  checksum: number;
}

export interface PcapPacket {
  /** Timestamp as stored: seconds·1e6 + fraction, µs since the Unix epoch. */
  timeUs: number;
  capturedLength: number;
  originalLength: number;
  ethertype: number;
  /** Null unless the frame is Ethernet + IPv4. */
  ip: Ipv4Header | null;
  /** Null unless the IPv4 packet is UDP. */
  udp: UdpHeader | null;
  /** The UDP payload when `udp` is set, otherwise the bytes after the Ethernet header. */
  payload: Uint8Array;
}

export interface PcapFile {
  versionMajor: number;
  versionMinor: number;
  snaplen: number;
  linktype: number;
  packets: PcapPacket[];
}

const ipText = (b: Uint8Array, at: number) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;

/** Parse a classic libpcap file (either byte order, µs or ns timestamps); Ethernet/IPv4/UDP are decoded. */
export function readPcap(path: string): PcapFile {
  const bytes = readFileSync(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < PCAP_HEADER_LEN) throw new Error(`${path}: too short for a pcap header`);
  const magicLE = view.getUint32(0, true);
  let le: boolean;
  let nanos: boolean;
  if (magicLE === 0xa1b2c3d4 || magicLE === 0xa1b23c4d) [le, nanos] = [true, magicLE === 0xa1b23c4d];
  else {
    const magicBE = view.getUint32(0, false);
    if (magicBE !== 0xa1b2c3d4 && magicBE !== 0xa1b23c4d) throw new Error(`${path}: not a classic pcap file (magic 0x${magicLE.toString(16)})`);
    [le, nanos] = [false, magicBE === 0xa1b23c4d];
  }
  const file: PcapFile = {
    versionMajor: view.getUint16(4, le),
    versionMinor: view.getUint16(6, le),
    snaplen: view.getUint32(16, le),
    linktype: view.getUint32(20, le),
    packets: [],
  };

  let at = PCAP_HEADER_LEN;
  while (at < bytes.length) {
    if (at + RECORD_HEADER_LEN > bytes.length) throw new Error(`${path}: truncated record header at byte ${at}`);
    const seconds = view.getUint32(at, le);
    const fraction = view.getUint32(at + 4, le);
    const capturedLength = view.getUint32(at + 8, le);
    const originalLength = view.getUint32(at + 12, le);
    at += RECORD_HEADER_LEN;
    if (at + capturedLength > bytes.length) throw new Error(`${path}: truncated packet at byte ${at}`);
    const frame = bytes.subarray(at, at + capturedLength);
    at += capturedLength;

    const packet: PcapPacket = {
      timeUs: seconds * 1e6 + (nanos ? fraction / 1000 : fraction),
      capturedLength,
      originalLength,
      ethertype: frame.length >= ETH_LEN ? (frame[12]! << 8) | frame[13]! : -1,
      ip: null,
      udp: null,
      payload: frame.subarray(Math.min(ETH_LEN, frame.length)),
    };
    file.packets.push(packet);
    if (file.linktype !== LINKTYPE_ETHERNET || packet.ethertype !== 0x0800 || frame.length < ETH_LEN + IPV4_LEN) continue;

    const f = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const ihl = frame[ETH_LEN]! & 0x0f;
    if (frame[ETH_LEN]! >> 4 !== 4 || ihl < 5 || frame.length < ETH_LEN + ihl * 4) continue;
    const flagsAndOffset = f.getUint16(ETH_LEN + 6);
    packet.ip = {
      ihl,
      totalLength: f.getUint16(ETH_LEN + 2),
      id: f.getUint16(ETH_LEN + 4),
      flags: flagsAndOffset >> 13,
      fragmentOffset: flagsAndOffset & 0x1fff,
      ttl: frame[ETH_LEN + 8]!,
      protocol: frame[ETH_LEN + 9]!,
      checksum: f.getUint16(ETH_LEN + 10),
      src: ipText(frame, ETH_LEN + 12),
      dst: ipText(frame, ETH_LEN + 16),
      header: frame.subarray(ETH_LEN, ETH_LEN + ihl * 4),
    };
    const udpAt = ETH_LEN + ihl * 4;
    if (packet.ip.protocol !== 17 || frame.length < udpAt + UDP_LEN) continue;
    packet.udp = {
      srcPort: f.getUint16(udpAt),
      dstPort: f.getUint16(udpAt + 2),
      length: f.getUint16(udpAt + 4),
      checksum: f.getUint16(udpAt + 6),
    };
    const udpEnd = Math.min(frame.length, udpAt + Math.max(UDP_LEN, packet.udp.length));
    packet.payload = frame.subarray(udpAt + UDP_LEN, udpEnd);
  }
  return file;
}
