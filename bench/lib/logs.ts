// Generated logs for the throughput, micro and memory benchmarks, written by
// netreplay's own WriteFile and kept between runs in a cache directory.
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { WriteFile } from '../../src/index.js';

/** Bump when the generated content changes, so stale caches are not reused. */
const CACHE_VERSION = 1;
export const cacheDir = join(process.env.NETREPLAY_BENCH_CACHE ?? tmpdir(), `netreplay-bench-cache-v${CACHE_VERSION}`);

const packr = new Packr({ useRecords: false });

/** A sensor-like msgpack map of about 100 bytes, as robots and feeds log them. */
export function sensorPayload(i: number): Buffer {
  return packr.pack({
    seq: i,
    stamp: 1_700_000_000 + i / 1000,
    frame: 'base_link',
    pos: [Math.sin(i), Math.cos(i), i * 1e-3],
    quat: [0, 0, Math.sin(i / 2), Math.cos(i / 2)],
    ok: true,
  });
}

export interface GeneratedLog {
  path: string;
  records: number;
  bytes: number;
}

/**
 * `records` records of `payload(i)`, one every `stepNs`, cached under `name`.
 * Written to a temporary prefix and renamed, so an interrupted run leaves no
 * half log behind for the next one.
 */
export function generatedLog(
  name: string,
  records: number,
  stepNs: number,
  payload: (i: number) => Uint8Array,
  topics = ['imu', 'odom', 'scan', 'gps'],
): GeneratedLog {
  mkdirSync(cacheDir, { recursive: true });
  const path = join(cacheDir, `${name}.log`);
  if (!existsSync(path)) {
    const writer = new WriteFile(join(cacheDir, `${name}.partial`), { type: 'Sensor', created: '2026-01-01 00:00:00' });
    for (let i = 0; i < records; i++) writer.write((i * stepNs) / 1e9, topics[i % topics.length]!, payload(i));
    const [written] = writer.close();
    renameSync(written!, path);
  }
  return { path, records, bytes: statSync(path).size };
}

/** Records of about `payloadBytes` bytes (a msgpack bin), for logs of a given size. */
export function blobPayload(payloadBytes: number): (i: number) => Uint8Array {
  const template = packr.pack(Buffer.alloc(payloadBytes - 5, 0x5a));
  return (i) => {
    const p = Buffer.from(template);
    p.writeUInt32BE(i, p.length - 4);
    return p;
  };
}
