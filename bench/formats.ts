// Reading MCAP and pcap/pcapng (issue 12): `npm run bench:formats` (about
// 20 minutes on 2 cores) or `npm run bench:formats -- --quick` (smaller files).
//
//  1. MCAP decode through the reader trait on one core (native.benchDecodeLog:
//     the whole file read in Rust on the JS thread, no JS per record), files
//     written by the core's McapWriter in 1 MiB chunks, uncompressed, lz4 and
//     zstd, ~150-byte and ~2 KiB messages; beside the machine's ceiling for
//     the same file's bytes (`netreplay-bench sum`: every word summed through
//     a fresh mapping, and through read(2)) and the MCL decode of the same run;
//  2. seek in a 2 GB MCAP: seek(t) → first record, random t;
//  3. pcap and pcapng decode through the reader trait;
//  4. the same MCAP files read by @mcap/core (McapIndexedReader over a file
//     handle, wasm lz4/zstd) and by netreplay's TS API (ReadFile.read(), and a
//     Replay at speed Infinity with decode: false);
//  5. the 1 kHz timing rows of bench/run.ts (`--only-1khz`): pcap replay
//     lateness beside tcpreplay and the MCL native row, kernel timestamps.
//
// Every figure is the median of `runs` runs, with its spread (min–max), and
// each run's ceiling is measured in the same run right before it. Files are
// read from the page cache (they were just written; the ceiling is too).
// Generated files go to a temporary directory removed at the end.
// Results: bench/results/formats.json and formats.md (quick: bench/results/quick/).
// Uses the built addon: run `npm run build:native` first.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { McapIndexedReader } from '@mcap/core';
import type { IReadable } from '@mcap/core';
import lz4Decompress from '@foxglove/wasm-lz4';
import * as zstd from '@foxglove/wasm-zstd';
import { ReadFile, Replay } from '../src/index.js';
import { native } from '../src/native.js';
import { machineInfo, median, root, us, type WakeSummary } from './lib/harness.js';
import { generatedLog, sensorPayload } from './lib/logs.js';
import { buildReceiver } from './lib/receiver.js';
import { markdownTable } from './lib/report.js';
import { percentile } from './lib/stats.js';

const quick = process.argv.includes('--quick');
const outDir = join(root, 'bench', 'results', ...(quick ? ['quick'] : []));
const work = mkdtempSync(join(tmpdir(), 'netreplay-formats-'));
const started = Date.now();
const log = (...a: unknown[]) => console.log(...a);

/** Sizes: payload bytes per MCAP decode file, per seek file, per capture. */
const size = quick
  ? { mcapBytes: 100e6, seekBytes: 300e6, captureBytes: 100e6, mclRecords: 200_000, runs: 3, seeks: 100, seekRuns: 3, jsRuns: 3 }
  : { mcapBytes: 500e6, seekBytes: 2.1e9, captureBytes: 1e9, mclRecords: 1_000_000, runs: 5, seeks: 200, seekRuns: 3, jsRuns: 3 };

const rxBin = buildReceiver(root);

/** Median and spread of a set of runs. */
interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

const spread = (runs: number[]): Spread => ({ median: median(runs), min: Math.min(...runs), max: Math.max(...runs), runs });
const gbps = (bytes: number, ns: number) => bytes / ns; // bytes/ns = GB/s
const fmt = (s: Spread, digits = 2) => `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;

/** The machine's ceiling for `path`'s bytes, one pass each way: GB/s. */
function ceiling(path: string): { mapped: number; read: number } {
  const out = JSON.parse(execFileSync(rxBin, ['sum', '--file', path, '--runs', '1'], { encoding: 'utf8' })) as { bytes: number; mappedNs: number[]; readNs: number[] };
  return { mapped: gbps(out.bytes, out.mappedNs[0]!), read: gbps(out.bytes, out.readNs[0]!) };
}

/** One native decode of `path` on this thread: GB/s of file bytes and M records/s. */
function nativeDecode(path: string, bytes: number, expect: number): { gbps: number; mrps: number } {
  const t0 = process.hrtime.bigint();
  const { records } = native.benchDecodeLog(path);
  const ns = Number(process.hrtime.bigint() - t0);
  if (records !== expect) throw new Error(`${path}: decoded ${records} of ${expect} records`);
  return { gbps: gbps(bytes, ns), mrps: (records * 1e3) / ns };
}

// ---------------------------------------------------------------- 1 + 4: MCAP

interface McapFileInfo {
  name: string;
  compression: string;
  payloadBytes: number;
  records: number;
  fileBytes: number;
  /** Payload bytes over file bytes (≥ 1 when compression helps). */
  ratio: number;
}

interface DecodeRow {
  file: McapFileInfo | CaptureInfo;
  gbps: Spread;
  mrps: Spread;
  ceilingMapped: Spread;
  ceilingRead: Spread;
  /** The run's decode over its own mapped ceiling. */
  ofCeiling: Spread;
}

interface JsRow {
  file: string;
  contender: string;
  mbps: Spread;
  mrps: Spread;
  ceilingMapped: Spread;
}

const decompressHandlers = {
  lz4: (buffer: Uint8Array, decompressedSize: bigint) => lz4Decompress(buffer, Number(decompressedSize)),
  zstd: (buffer: Uint8Array, decompressedSize: bigint) => zstd.decompress(buffer, Number(decompressedSize)),
};

/** A file handle as @mcap/core's readable (what @mcap/nodejs's FileHandleReadable does). */
async function fileReadable(path: string): Promise<{ readable: IReadable; close: () => Promise<void> }> {
  const handle = await open(path, 'r');
  const bytes = BigInt((await handle.stat()).size);
  const readable: IReadable = {
    size: () => Promise.resolve(bytes),
    read: async (offset, length) => {
      const buffer = Buffer.allocUnsafe(Number(length));
      let done = 0;
      while (done < buffer.length) {
        const { bytesRead } = await handle.read(buffer, done, buffer.length - done, Number(offset) + done);
        if (bytesRead === 0) throw new Error(`${path}: short read at ${Number(offset) + done}`);
        done += bytesRead;
      }
      return buffer;
    },
  };
  return { readable, close: () => handle.close() };
}

/** One read of every message with @mcap/core; the number of messages. */
async function mcapCoreRead(path: string): Promise<number> {
  const { readable, close } = await fileReadable(path);
  try {
    const reader = await McapIndexedReader.Initialize({ readable, decompressHandlers });
    let n = 0;
    for await (const message of reader.readMessages()) n += message.data.length > 0 ? 1 : 0;
    return n;
  } finally {
    await close();
  }
}

/** One read through netreplay's TS reader (msgpack payloads decoded). */
function readFileRead(path: string): number {
  const reader = new ReadFile(path);
  let n = 0;
  while (reader.read() !== null) n++;
  return n;
}

/** One replay at speed Infinity, raw payloads (the engine thread reads, JS is delivered batches). */
async function replayRead(path: string): Promise<number> {
  const replay = new Replay(path, { speed: Infinity, decode: false });
  let n = 0;
  replay.on('message', () => void n++);
  replay.start();
  await replay.done;
  replay.close();
  return n;
}

function writeMcap(compression: string, payloadBytes: number, totalBytes: number, name = `${compression}-${payloadBytes}`): McapFileInfo {
  const path = join(work, `${name}.mcap`);
  const records = Math.round(totalBytes / payloadBytes);
  const t0 = Date.now();
  const fileBytes = native.benchWriteMcap(path, compression, records, payloadBytes, 4);
  log(`  wrote ${name}.mcap: ${records.toLocaleString('en')} × ${payloadBytes} B, ${(fileBytes / 1e6).toFixed(0)} MB in ${((Date.now() - t0) / 1e3).toFixed(1)} s`);
  return { name, compression, payloadBytes, records, fileBytes, ratio: (records * payloadBytes) / fileBytes };
}

async function mcapSuite(mclRows: DecodeRow[]): Promise<{ files: McapFileInfo[]; decode: DecodeRow[]; js: JsRow[] }> {
  await zstd.isLoaded;
  await lz4Decompress.isLoaded;
  const decode: DecodeRow[] = [];
  const js: JsRow[] = [];
  const files: McapFileInfo[] = [];
  const mcl = generatedLog(`sensor-${size.mclRecords}`, size.mclRecords, 1_000, sensorPayload);
  const mclFile: CaptureInfo = { name: `MCL text (${(mcl.bytes / 1e6).toFixed(0)} MB, ~100-byte maps)`, records: mcl.records, fileBytes: mcl.bytes, format: 'mcl', payloadBytes: 100 };
  const mclRuns: { d: { gbps: number; mrps: number }; c: { mapped: number; read: number } }[] = [];

  for (const payloadBytes of [150, 2048]) {
    for (const compression of ['none', 'lz4', 'zstd']) {
      log(`\n# MCAP ${compression}, ${payloadBytes}-byte messages`);
      const file = writeMcap(compression, payloadBytes, size.mcapBytes);
      files.push(file);
      const path = join(work, `${file.name}.mcap`);
      const runs: { d: { gbps: number; mrps: number }; c: { mapped: number; read: number } }[] = [];
      for (let run = 0; run < size.runs; run++) {
        const c = ceiling(path);
        const d = nativeDecode(path, file.fileBytes, file.records);
        runs.push({ c, d });
        log(`  run ${run + 1}: native ${d.gbps.toFixed(2)} GB/s, ${d.mrps.toFixed(2)} M records/s; ceiling mapped ${c.mapped.toFixed(2)} GB/s, read ${c.read.toFixed(2)} GB/s`);
        // The MCL decode beside it, in the same run (once per run of the first file's set).
        if (files.length === 1) {
          const mc = ceiling(mcl.path);
          const md = nativeDecode(mcl.path, mcl.bytes, mcl.records);
          mclRuns.push({ c: mc, d: md });
          log(`         MCL ${md.gbps.toFixed(2)} GB/s, ${md.mrps.toFixed(2)} M records/s; ceiling mapped ${mc.mapped.toFixed(2)} GB/s`);
        }
      }
      decode.push(decodeRow(file, runs));

      const contenders: [string, () => Promise<number> | number][] = [
        ['netreplay benchDecodeLog (Rust, no JS per record)', () => native.benchDecodeLog(path).records],
        ['netreplay ReadFile.read() (msgpack-decoded)', () => readFileRead(path)],
        ['netreplay Replay, speed Infinity, decode: false', () => replayRead(path)],
        ['@mcap/core McapIndexedReader', () => mcapCoreRead(path)],
      ];
      const jsRuns = new Map<string, { mbps: number; mrps: number; ceiling: number }[]>();
      for (let run = 0; run < size.jsRuns; run++) {
        const c = ceiling(path);
        for (const [name, read] of contenders) {
          const t0 = process.hrtime.bigint();
          const n = await read();
          const ns = Number(process.hrtime.bigint() - t0);
          if (n !== file.records) throw new Error(`${name}: read ${n} of ${file.records} from ${path}`);
          const r = { mbps: (file.fileBytes * 1e3) / ns, mrps: (n * 1e3) / ns, ceiling: c.mapped };
          jsRuns.set(name, [...(jsRuns.get(name) ?? []), r]);
          log(`  ${name.padEnd(50)} ${r.mbps.toFixed(0).padStart(6)} MB/s  ${r.mrps.toFixed(2)} M records/s`);
        }
      }
      for (const [contender, rs] of jsRuns) {
        js.push({
          file: file.name,
          contender,
          mbps: spread(rs.map((r) => r.mbps)),
          mrps: spread(rs.map((r) => r.mrps)),
          ceilingMapped: spread(rs.map((r) => r.ceiling * 1e3)),
        });
      }
      rmSync(path);
    }
  }
  mclRows.push(decodeRow(mclFile, mclRuns));
  return { files, decode, js };
}

function decodeRow(file: McapFileInfo | CaptureInfo, runs: { d: { gbps: number; mrps: number }; c: { mapped: number; read: number } }[]): DecodeRow {
  return {
    file,
    gbps: spread(runs.map((r) => r.d.gbps)),
    mrps: spread(runs.map((r) => r.d.mrps)),
    ceilingMapped: spread(runs.map((r) => r.c.mapped)),
    ceilingRead: spread(runs.map((r) => r.c.read)),
    ofCeiling: spread(runs.map((r) => (100 * r.d.gbps) / r.c.mapped)),
  };
}

// ---------------------------------------------------------------- 2: seek

interface SeekRow {
  file: McapFileInfo;
  seeks: number;
  /** Per run (a new random set of times each): median and p99, µs. */
  medianUs: Spread;
  p99Us: Spread;
  maxUs: Spread;
}

function seekSuite(): SeekRow[] {
  const rows: SeekRow[] = [];
  for (const compression of ['none', 'zstd']) {
    log(`\n# Seek in a ${(size.seekBytes / 1e9).toFixed(1)} GB MCAP, ${compression}, 1 KiB messages`);
    const file = writeMcap(compression, 1024, size.seekBytes, `seek-${compression}`);
    const path = join(work, `${file.name}.mcap`);
    const p50: number[] = [];
    const p99: number[] = [];
    const max: number[] = [];
    for (let run = 0; run < size.seekRuns; run++) {
      const sorted = native.benchSeek(path, size.seeks, run + 1).map((ns) => ns / 1e3).sort((a, b) => a - b);
      p50.push(percentile(sorted, 0.5));
      p99.push(percentile(sorted, 0.99));
      max.push(sorted.at(-1)!);
      log(`  run ${run + 1}: ${size.seeks} seeks, median ${p50.at(-1)!.toFixed(0)} µs, p99 ${p99.at(-1)!.toFixed(0)} µs, max ${max.at(-1)!.toFixed(0)} µs`);
    }
    rows.push({ file, seeks: size.seeks, medianUs: spread(p50), p99Us: spread(p99), maxUs: spread(max) });
    rmSync(path);
  }
  return rows;
}

// ---------------------------------------------------------------- 3: captures

interface CaptureInfo {
  name: string;
  format: string;
  payloadBytes: number;
  records: number;
  fileBytes: number;
}

function captureSuite(): DecodeRow[] {
  const rows: DecodeRow[] = [];
  for (const payloadBytes of [200, 1400]) {
    for (const format of ['pcap', 'pcapng']) {
      log(`\n# ${format}, UDP datagrams of ${payloadBytes} bytes`);
      const name = `${format}-${payloadBytes}`;
      const path = join(work, `${name}.${format}`);
      const records = Math.round(size.captureBytes / (payloadBytes + 42));
      const fileBytes = native.benchWriteCapture(path, format, records, payloadBytes);
      log(`  wrote ${name}: ${records.toLocaleString('en')} frames, ${(fileBytes / 1e6).toFixed(0)} MB`);
      const runs: { d: { gbps: number; mrps: number }; c: { mapped: number; read: number } }[] = [];
      for (let run = 0; run < size.runs; run++) {
        const c = ceiling(path);
        const d = nativeDecode(path, fileBytes, records);
        runs.push({ c, d });
        log(`  run ${run + 1}: native ${d.gbps.toFixed(2)} GB/s, ${d.mrps.toFixed(2)} M records/s; ceiling mapped ${c.mapped.toFixed(2)} GB/s, read ${c.read.toFixed(2)} GB/s`);
      }
      rows.push(decodeRow({ name, format, payloadBytes, records, fileBytes }, runs));
      rmSync(path);
    }
  }
  return rows;
}

// ---------------------------------------------------------------- 5: 1 kHz timing

interface TimingRow {
  contender: string;
  run: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  driftUs: number;
  lost: number;
}

function timingSuite(): { rows: TimingRow[]; wake?: Record<string, WakeSummary>; note?: string } {
  log('\n# 1 kHz timing (bench/run.ts --only-1khz)');
  const out = join(work, 'timing-1khz.json');
  const args = ['--import', 'tsx', join(root, 'bench', 'run.ts'), '--only-1khz', '--json', out, ...(quick ? ['--quick'] : [])];
  const child = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', timeout: 20 * 60_000 });
  if (child.status !== 0) return { rows: [], note: `bench/run.ts --only-1khz exited with ${child.status ?? child.signal}` };
  const result = JSON.parse(readFileSync(out, 'utf8')) as { rows: TimingRow[]; skipped: string[]; wake: Record<string, WakeSummary> };
  return { rows: result.rows, wake: result.wake, ...(result.skipped.length > 0 && { note: result.skipped.join('; ') }) };
}

// ---------------------------------------------------------------- report

function writeResults(mcap: Awaited<ReturnType<typeof mcapSuite>>, mcl: DecodeRow[], seek: SeekRow[], capture: DecodeRow[], timing: ReturnType<typeof timingSuite>): void {
  mkdirSync(outDir, { recursive: true });
  const info = { ...machineInfo(), date: new Date().toISOString(), quick, minutes: (Date.now() - started) / 60_000 };
  writeFileSync(join(outDir, 'formats.json'), JSON.stringify({ machine: info, size, mcap, mcl, seek, capture, timing }, null, 2) + '\n');

  const md: string[] = [];
  const decodeTable = (rows: DecodeRow[], describe: (f: DecodeRow['file']) => string[]) =>
    markdownTable(
      ['file', 'messages', 'file MB', 'GB/s of file bytes', 'M records/s', 'ceiling, mapped GB/s', 'ceiling, read(2) GB/s', '% of mapped ceiling'],
      rows.map((r) => [...describe(r.file), fmt(r.gbps), fmt(r.mrps), fmt(r.ceilingMapped), fmt(r.ceilingRead), fmt(r.ofCeiling, 0)]),
    );
  md.push(`# netreplay: MCAP and pcap reading${quick ? ' (quick run)' : ''}`, '');
  md.push(`${info.date.slice(0, 10)} · ${info.cpu}, ${info.cores} cores · Linux ${info.kernel} · Node ${info.node} · ${info.rustc}`, '');
  md.push(`Produced by \`npm run bench:formats${quick ? ' -- --quick' : ''}\` in ${info.minutes.toFixed(1)} minutes. Medians of ${size.runs} runs (min–max); each run's ceiling is measured right before it on the same file (page cache): every 8-byte word summed through a fresh mapping, and through read(2) into a 1 MiB buffer.`, '');
  md.push('## Decode through the reader trait, one core', '');
  md.push('`native.benchDecodeLog`: the file opened by content and read to the end on one thread, each record built (payload copied) and counted.', '');
  md.push(
    decodeTable([...mcap.decode, ...mcl], (f) => [
      'compression' in f ? `MCAP ${f.compression}, ${f.payloadBytes} B (ratio ${f.ratio.toFixed(2)})` : f.name,
      f.records.toLocaleString('en'),
      (f.fileBytes / 1e6).toFixed(0),
    ]),
    '',
  );
  md.push(decodeTable(capture, (f) => [f.name, f.records.toLocaleString('en'), (f.fileBytes / 1e6).toFixed(0)]), '');
  md.push('## Seek in a large MCAP', '');
  md.push(`Time from \`seek(t)\` to the first record returned, random t in the file's range, ${size.seekRuns} runs of ${size.seeks} seeks (each run its own times): the median over runs of each run's percentile (min–max).`, '');
  md.push(
    markdownTable(
      ['file', 'file MB', 'seeks per run', 'median µs', 'p99 µs', 'max µs'],
      seek.map((r) => [`MCAP ${r.file.compression}, ${r.file.payloadBytes} B`, (r.file.fileBytes / 1e6).toFixed(0), r.seeks, fmt(r.medianUs, 0), fmt(r.p99Us, 0), fmt(r.maxUs, 0)]),
    ),
    '',
  );
  md.push('## MCAP read speed from JavaScript', '');
  md.push(`The same files, ${size.jsRuns} runs; MB/s of file bytes. @mcap/core: McapIndexedReader over a file handle, lz4/zstd from @foxglove/wasm-lz4 and @foxglove/wasm-zstd. ReadFile.read() runs on the JS thread; the Replay reads on its engine thread and delivers batches to JS (two threads).`, '');
  md.push(
    markdownTable(
      ['file', 'reader', 'MB/s', 'M records/s', 'ceiling, mapped MB/s'],
      mcap.js.map((r) => [r.file, r.contender, fmt(r.mbps, 0), fmt(r.mrps), fmt(r.ceilingMapped, 0)]),
    ),
    '',
  );
  md.push('## 1 kHz replay lateness (kernel receive timestamps)', '');
  if (timing.note) md.push(`- ${timing.note}`, '');
  if (timing.wake) {
    md.push("The machine in the same run (`netreplay-bench wake`): how late its sleeps wake and how long a spinning thread is kept off its core, µs.", '');
    md.push(markdownTable(['measure', 'n', 'p50', 'p99', 'p99.9', 'max'], Object.entries(timing.wake).map(([k, w]) => [k, w.count, us(w.p50), us(w.p99), us(w.p999), us(w.max)])), '');
  }
  const contenders = [...new Set(timing.rows.map((r) => r.contender))];
  md.push(
    markdownTable(
      ['contender', 'runs', 'p50 µs', 'p99 µs', 'p99.9 µs', 'max µs', 'drift µs', 'lost'],
      contenders.map((c) => {
        const rs = timing.rows.filter((r) => r.contender === c);
        const s = (pick: (r: TimingRow) => number) => fmt(spread(rs.map(pick)), 1);
        return [c, rs.length, s((r) => r.p50Us), s((r) => r.p99Us), s((r) => r.p999Us), s((r) => r.maxUs), s((r) => r.driftUs), rs.reduce((a, r) => a + r.lost, 0)];
      }),
    ),
    '',
  );
  writeFileSync(join(outDir, 'formats.md'), md.join('\n'));
  log(`\n${md.join('\n')}`);
  log(`Results in ${outDir} (${info.minutes.toFixed(1)} minutes)`);
}

// ---------------------------------------------------------------- main

try {
  log(`netreplay formats bench${quick ? ' (quick)' : ''}: ${cpus().length} × ${cpus()[0]?.model}, Node ${process.version}; files in ${work}`);
  const mcl: DecodeRow[] = [];
  const mcap = await mcapSuite(mcl);
  const seek = seekSuite();
  const capture = captureSuite();
  const timing = timingSuite();
  writeResults(mcap, mcl, seek, capture, timing);
} finally {
  rmSync(work, { recursive: true, force: true });
}
