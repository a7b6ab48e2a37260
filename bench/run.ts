// The measurement suite: `npm run bench` (about 8.5 minutes on 2 cores) or
// `npm run bench:quick` (under 2 minutes, smaller everything); `--only-1khz
// [--json FILE]` runs just the machine check and the 1 kHz schedule and
// writes its rows as JSON (what `npm run bench:formats` uses).
//
//  0. the machine: how late sleeps wake, how long a spinning thread stalls;
//  1. micro-benchmarks (tinybench): MCL decode, the ring, delivery to JS;
//  2. timing fidelity: generated schedules replayed by each contender to a
//     loopback UDP receiver that takes kernel receive timestamps
//     (SO_TIMESTAMPNS), or, for the JS listener, timed in the callback;
//  3. throughput at speed Infinity, beside the machine's UDP send ceiling;
//     the UDP contenders both unpinned and pinned (sender CPU 0, receiver
//     CPU 1) where taskset allows;
//  4. peak RSS on a ≥ 2 GB log against a 200 MB one, and start() → first record.
//
// Results: bench/results/ (results.json, results.md, SVG plots); the quick
// run writes to bench/results/quick/ instead. Uses the built addon: run
// `npm run build` first.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CpuSample } from './contender.js';
import { runMicro, type MicroResult } from './micro.js';
import { blobPayload, generatedLog, sensorPayload, type GeneratedLog } from './lib/logs.js';
import { writePcap } from './lib/pcap.js';
import { onCpu, senderReceiverCpus, type SenderReceiverCpus } from './lib/cpu.js';
import { contender, cpuPercent, machineInfo, measureMachine, median, root, us, type WakeSummary } from './lib/harness.js';
import { buildReceiver, paceSchedule, startReceiver, type Arrivals } from './lib/receiver.js';
import { barSvg, cdfSvg, markdownTable } from './lib/report.js';
import { bursty, datagramOf, longGap, longestGap, steady, writeScheduleLog, type Schedule } from './lib/schedule.js';
import { latenessUs, timingStats, type TimingStats } from './lib/stats.js';
import { runTcpreplay, tcpreplayVersion, withLoopbackSysctls } from './lib/tcpreplay.js';

const quick = process.argv.includes('--quick');
/** `--only-1khz [--json FILE]`: only the 1 kHz timing rows, as JSON (default bench/results[/quick]/timing-1khz.json). */
const only1kHz = process.argv.includes('--only-1khz');
const jsonAt = process.argv.indexOf('--json');
const timingJson = jsonAt >= 0 ? process.argv[jsonAt + 1] : undefined;
const outDir = join(root, 'bench', 'results', ...(quick ? ['quick'] : []));
const work = mkdtempSync(join(tmpdir(), 'netreplay-bench-'));
const started = Date.now();

/** Sizes of everything; quick mode divides them so the suite runs in under 2 minutes. */
const size = quick
  ? { wakeSeconds: 4, steady1k: 2_000, runs1k: 3, drift: 10_000, steady10k: 10_000, steady100k: 50_000, bursts: 200, gapMs: 1_500, throughput: 1_000_000, tcpreplayTopspeed: 200_000, bigLogMB: 400, smallLogMB: 40, micro: 3 }
  : { wakeSeconds: 10, steady1k: 10_000, runs1k: 3, drift: 100_000, steady10k: 50_000, steady100k: 300_000, bursts: 500, gapMs: 3_000, throughput: 5_000_000, tcpreplayTopspeed: 1_000_000, bigLogMB: 2_100, smallLogMB: 200, micro: 5 };

const log = (...a: unknown[]) => console.log(...a);

// ---------------------------------------------------------------- timing

interface TimingRun {
  schedule: string;
  contender: string;
  run: number;
  stats: TimingStats;
  /** CPU of the replaying process per second of replay, % of one core. */
  cpuPct: number;
  /** % of a core inside the longest gap (long-gap schedule). */
  gapCpuPct?: number;
  originNote?: string;
  sortedUs: Float64Array;
}

/** netreplay-bench wake: what the machine does to any timing thread. */
let wake: Record<string, WakeSummary> = {};

const tcpreplay = tcpreplayVersion();
const rxBin = buildReceiver(root);
/** Where UDP throughput is also measured with sender and receiver on separate CPUs. */
const pin = senderReceiverCpus();
const timing: TimingRun[] = [];
const skipped: string[] = [];
if (!tcpreplay) skipped.push('tcpreplay: not installed (Debian package `tcpreplay`); its rows are missing');
if (!pin) skipped.push('pinned UDP throughput: taskset cannot put this process on CPUs 0 and 1; the UDP sink is judged unpinned');

function gapWindow(s: Schedule): [number, number] | undefined {
  const [a, b] = longestGap(s);
  // Inside the gap, clear of the records on either side.
  return b - a > 100e6 ? [a + 20e6, b - 20e6] : undefined;
}

function windowPct(windows: CpuSample[] | undefined): number | undefined {
  const w = windows?.[0];
  return w ? cpuPercent(w.cpuUs, w.wallNs) : undefined;
}

async function udpContender(
  s: Schedule,
  name: string,
  run: number,
  play: (port: number) => Promise<{ originNs?: number; cpuPct: number; gapCpuPct?: number }>,
): Promise<void> {
  // The receiver must outwait the schedule's longest silence.
  const [gapStart, gapEnd] = longestGap(s);
  const idleMs = 2000 + Math.ceil((gapEnd - gapStart) / 1e6);
  const rx = await startReceiver(rxBin, { out: join(work, 'rx.bin'), count: s.timesNs.length, expect: s.timesNs.length, idleMs });
  let played;
  try {
    played = await play(rx.port);
  } catch (err) {
    rx.kill();
    throw err;
  }
  const arrivals: Arrivals = await rx.arrivals;
  if (arrivals.summary.noTimestamp > 0) log(`  (${arrivals.summary.noTimestamp} datagrams without a kernel timestamp)`);
  // Without an origin of its own (tcpreplay), the first record defines it.
  const originNs = played.originNs ?? arrivals.arrivalNs[0]! - s.timesNs[0]!;
  const input = { scheduleNs: s.timesNs, arrivalNs: arrivals.arrivalNs, originNs };
  timing.push({
    schedule: s.name,
    contender: name,
    run,
    stats: timingStats(input),
    cpuPct: played.cpuPct,
    ...(played.gapCpuPct !== undefined && { gapCpuPct: played.gapCpuPct }),
    ...(played.originNs === undefined && { originNote: 'origin = first arrival' }),
    sortedUs: latenessUs(input),
  });
  report(timing.at(-1)!);
}

function report(r: TimingRun): void {
  const l = r.stats.latenessUs;
  log(
    `  ${r.contender.padEnd(24)} p50 ${us(l.p50).padStart(6)}  p99 ${us(l.p99).padStart(6)}  p99.9 ${us(l.p999).padStart(6)}` +
      `  max ${us(l.max).padStart(7)} µs  drift ${us(r.stats.driftUs)} µs  lost ${r.stats.lost}  cpu ${r.cpuPct.toFixed(1)}%` +
      (r.gapCpuPct !== undefined ? `  gap cpu ${r.gapCpuPct.toFixed(2)}%` : ''),
  );
}

/** The default policy with `realtime: false`. */
const NORMAL_CLASS = 'netreplay native UDP, normal class';

/** The bare spinning sender of `netreplay-bench pace --batch`. */
const BARE_PACER = 'bare pacer (spins, sendmmsg)';

/** `floor`: the bare pacer replays the schedule too (not for the 100 s drift schedule). */
async function timeSchedule(s: Schedule, runs: number, contenders: 'all' | 'native', floor = true): Promise<void> {
  log(`\n# ${s.name}: ${s.description}`);
  const logPath = writeScheduleLog(join(work, s.name), s);
  const scheduleFile = join(work, `${s.name}.times`);
  writeFileSync(scheduleFile, s.timesNs);
  const window = gapWindow(s);
  const cpuWindows = window ? [window] : [];
  for (let run = 1; run <= runs; run++) {
    await udpContender(s, 'netreplay native UDP', run, async (port) => {
      const r = await contender({ kind: 'native-udp', log: logPath, port, cpuWindows });
      return { originNs: r.originNs!, cpuPct: cpuPercent(r.cpuUs, r.wallNs), gapCpuPct: windowPct(r.windows) };
    });
    // The machine's own floor for this schedule and this receiver: a bare
    // sender spinning to each time, records of equal times in one sendmmsg.
    if (floor) {
      await udpContender(s, BARE_PACER, run, async (port) => {
        const p = await paceSchedule(rxBin, port, scheduleFile, true);
        return { originNs: p.originNs, cpuPct: cpuPercent(p.cpuUs, p.wallNs) };
      });
    }
    // The default in the normal class: what a process that may not enter
    // the real-time class gets (the default before it).
    await udpContender(s, NORMAL_CLASS, run, async (port) => {
      const r = await contender({ kind: 'native-udp', log: logPath, port, realtime: false, cpuWindows });
      return { originNs: r.originNs!, cpuPct: cpuPercent(r.cpuUs, r.wallNs), gapCpuPct: windowPct(r.windows) };
    });
    if (contenders === 'native') continue;

    // Spinning through every wait up to 1.5 ms: the default before adaptive
    // waiting, the best timing a core can buy.
    await udpContender(s, 'netreplay native UDP, busyWait 1.5 ms', run, async (port) => {
      const r = await contender({ kind: 'native-udp', log: logPath, port, busyWait: 0.0015, cpuWindows });
      return { originNs: r.originNs!, cpuPct: cpuPercent(r.cpuUs, r.wallNs), gapCpuPct: windowPct(r.windows) };
    });

    const arrivalsFile = join(work, 'js-arrivals.bin');
    const r = await contender({ kind: 'js', log: logPath, count: s.timesNs.length, arrivals: arrivalsFile, cpuWindows });
    const bytes = readFileSync(arrivalsFile);
    const arrivalNs = new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
    const input = { scheduleNs: s.timesNs, arrivalNs, originNs: r.originNs! };
    timing.push({
      schedule: s.name,
      contender: 'netreplay JS listener',
      run,
      stats: timingStats(input),
      cpuPct: cpuPercent(r.cpuUs, r.wallNs),
      ...(window && { gapCpuPct: windowPct(r.windows) }),
      sortedUs: latenessUs(input),
    });
    report(timing.at(-1)!);

    await udpContender(s, 'setTimeout + dgram', run, async (port) => {
      const r = await contender({ kind: 'settimeout', schedule: scheduleFile, port, cpuWindows });
      return { originNs: r.originNs!, cpuPct: cpuPercent(r.cpuUs, r.wallNs), gapCpuPct: windowPct(r.windows) };
    });

    // The capture tcpreplay replays below, replayed by netreplay (ReadPcap,
    // raw payloads to the capture's destination: the receiver's port).
    await udpContender(s, 'netreplay native UDP, pcap', run, async (port) => {
      const pcap = join(work, `${s.name}-netreplay.pcap`);
      writePcap(pcap, Array.from(s.timesNs, (timeNs, i) => ({ timeNs, payload: datagramOf(i) })), { dstPort: port });
      const r = await contender({ kind: 'native-udp', log: pcap, port, cpuWindows });
      return { originNs: r.originNs!, cpuPct: cpuPercent(r.cpuUs, r.wallNs), gapCpuPct: windowPct(r.windows) };
    });

    if (tcpreplay) {
      await udpContender(s, 'tcpreplay', run, async (port) => {
        const pcap = join(work, `${s.name}.pcap`);
        writePcap(pcap, Array.from(s.timesNs, (timeNs, i) => ({ timeNs, payload: datagramOf(i) })), { dstPort: port });
        const t = await withLoopbackSysctls(() => runTcpreplay(pcap));
        return { cpuPct: cpuPercent((t.cpuUserS + t.cpuSysS) * 1e6, t.wallNs) };
      });
    }
  }
}

/**
 * The drop policy: the UDP sink beside a JS listener that blocks for
 * `blockMs` per message (far slower than the schedule), JS delivery under
 * `lag: 'drop'` — blocked asleep (the policy alone), then busy (a core taken
 * too, on a 2-core machine). The UDP timing should match the native UDP row
 * of the same schedule; every record is delivered to JS or counted as dropped.
 */
async function dropSchedule(s: Schedule, blockMs: number): Promise<DropRow[]> {
  const logPath = writeScheduleLog(join(work, `${s.name}-drop`), s);
  const rows: DropRow[] = [];
  for (const spin of [false, true]) {
    const name = spin ? DROP_SPINNING : DROP_CONTENDER;
    log(`\n# ${s.name}: ${name} (${blockMs} ms per message)`);
    let row: DropRow = { name, js: 0, dropped: 0, records: s.timesNs.length };
    await udpContender(s, name, 1, async (port) => {
      const r = await contender({ kind: 'drop', log: logPath, port, blockMs, maxPendingBatches: 4, spin });
      row = { ...row, js: r.jsReceived as number, dropped: r.dropped as number };
      return { originNs: r.originNs!, cpuPct: cpuPercent(r.cpuUs, r.wallNs) };
    });
    log(`  JS received ${row.js}, dropped ${row.dropped}, of ${row.records} (${row.js + row.dropped === row.records ? 'exact' : 'NOT EXACT'})`);
    rows.push(row);
  }
  return rows;
}

interface DropRow {
  name: string;
  js: number;
  dropped: number;
  records: number;
}

const DROP_CONTENDER = "UDP beside a JS listener blocked asleep, lag 'drop'";
const DROP_SPINNING = "UDP beside a JS listener blocked busy, lag 'drop'";

// ---------------------------------------------------------------- seek

interface SeekRow {
  log: string;
  seeks: number;
  jsMs: number[];
  engineMs: number[];
  rssBeforeMB: number;
  rssAfterMB: number;
}

async function seekSuite(): Promise<SeekRow> {
  const recordBytes = 2070;
  const records = Math.ceil((size.bigLogMB * 1e6) / recordBytes);
  const l = generatedLog(`blob-${size.bigLogMB}MB`, records, 1_000_000, blobPayload(1000));
  const seeks = quick ? 20 : 100;
  log(`\n# Seek while playing, ${(l.bytes / 1e6).toFixed(0)} MB log: seek() → first record delivered (${seeks} seeks across the log)`);
  const r = await contender({ kind: 'seek', log: l.path, durationS: (records - 1) / 1000, seeks });
  const row: SeekRow = {
    log: `${(l.bytes / 1e6).toFixed(0)} MB`,
    seeks,
    jsMs: (r.jsNs as number[]).map((x) => x / 1e6),
    engineMs: (r.engineNs as number[]).map((x) => x / 1e6),
    rssBeforeMB: (r.rssBeforeKb as number) / 1024,
    rssAfterMB: (r.rssAfterKb as number) / 1024,
  };
  log(
    `  engine: median ${median(row.engineMs).toFixed(3)} ms, max ${Math.max(...row.engineMs).toFixed(3)} ms; ` +
      `in JS: median ${median(row.jsMs).toFixed(3)} ms, max ${Math.max(...row.jsMs).toFixed(3)} ms; ` +
      `RSS ${row.rssBeforeMB.toFixed(1)} → ${row.rssAfterMB.toFixed(1)} MB`,
  );
  return row;
}

// ---------------------------------------------------------------- throughput

interface ThroughputRow {
  name: string;
  records: number;
  perSec: number;
  unit: string;
  note?: string;
}

async function throughputSuite(big: GeneratedLog): Promise<ThroughputRow[]> {
  log(`\n# Throughput at speed Infinity: ${big.records.toLocaleString('en')} records of ~100-byte msgpack maps (${(big.bytes / 1e9).toFixed(2)} GB)`);
  const rows: ThroughputRow[] = [];
  const add = (row: ThroughputRow) => {
    rows.push(row);
    log(`  ${row.name.padEnd(32)} ${(row.perSec / 1e6).toFixed(2)} M ${row.unit}${row.note ? `  (${row.note})` : ''}`);
  };
  // Read once so that every contender finds the log in the page cache.
  await contender({ kind: 'throughput', log: big.path, sink: 'null' });
  for (const sink of ['null', 'js-raw', 'js-decoded'] as const) {
    const rates: number[] = [];
    for (let run = 0; run < 3; run++) {
      const r = await contender({ kind: 'throughput', log: big.path, sink });
      const n = sink === 'null' ? (r.delivered as number) : (r.jsReceived as number);
      if (n !== big.records) throw new Error(`${sink}: ${n} of ${big.records} records`);
      rates.push(n / (r.wallNs / 1e9));
    }
    const name = { null: 'native, null sink', 'js-raw': 'JS listener, raw bytes', 'js-decoded': 'JS listener, msgpackr-decoded' }[sink];
    add({ name, records: big.records, perSec: median(rates), unit: 'records/s', note: `median of 3: ${rates.map((x) => (x / 1e6).toFixed(2)).join(', ')} M/s` });
  }
  // The UDP contenders, each twice: as the kernel places them, and with the
  // sender on one CPU and the receiver on the other.
  const placements: { label: string; cpus?: SenderReceiverCpus }[] = [{ label: '' }];
  if (pin) placements.push({ label: ', pinned', cpus: pin });
  const pinNote = (cpus?: SenderReceiverCpus) => (cpus ? `; sender on CPU ${cpus.sender}, receiver on CPU ${cpus.receiver}` : '');
  for (const { label, cpus } of placements) {
    const udpRates: number[] = [];
    const udpNotes: string[] = [];
    for (let run = 0; run < 3; run++) {
      const rx = await startReceiver(rxBin, { out: join(work, 'rx.bin'), count: big.records, expect: big.records, cpu: cpus?.receiver });
      const r = await contender({ kind: 'throughput', log: big.path, sink: 'udp', port: rx.port }, cpus?.sender);
      const got = await rx.arrivals;
      udpRates.push((r.sent as number) / (r.wallNs / 1e9));
      // These payloads do not end in a record index: count datagrams, not records.
      udpNotes.push(`${got.summary.received.toLocaleString('en')} received, ${r.sendFailures} send failures`);
    }
    add({
      name: `native, UDP sink${label}`,
      records: big.records,
      perSec: median(udpRates),
      unit: 'datagrams/s',
      note: `median of 3: ${udpRates.map((x) => (x / 1e6).toFixed(3)).join(', ')} M/s; ${udpNotes[0]}${pinNote(cpus)}`,
    });
  }
  const n = size.tcpreplayTopspeed;
  for (const { label, cpus } of placements) {
    // The ceiling: one thread doing nothing but send() 120-byte datagrams.
    const rxBlast = await startReceiver(rxBin, { out: join(work, 'rx.bin'), count: n, expect: n, cpu: cpus?.receiver });
    const blast = JSON.parse(
      execFileSync(...onCpu(cpus?.sender, rxBin, ['blast', '--to', `127.0.0.1:${rxBlast.port}`, '--count', String(n), '--size', '120']), {
        encoding: 'utf8',
      }),
    ) as { sent: number; perSec: number };
    const gotBlast = await rxBlast.arrivals;
    add({
      name: `ceiling: send() loop (Rust)${label}`,
      records: blast.sent,
      perSec: blast.perSec,
      unit: 'datagrams/s',
      note: `netreplay-bench blast, 120-byte datagrams, ${gotBlast.received.toLocaleString('en')} received${pinNote(cpus)}`,
    });
  }
  if (tcpreplay) {
    for (const { label, cpus } of placements) {
      const rx = await startReceiver(rxBin, { out: join(work, 'rx.bin'), count: n, expect: n, cpu: cpus?.receiver });
      const pcap = join(work, 'topspeed.pcap');
      writePcap(pcap, (function* () {
        for (let i = 0; i < n; i++) yield { timeNs: i * 1000, payload: datagramOf(i) };
      })(), { dstPort: rx.port });
      const t = await withLoopbackSysctls(() => runTcpreplay(pcap, { topspeed: true, cpu: cpus?.sender }));
      const got = await rx.arrivals;
      const seconds = t.sendSeconds ?? t.wallNs / 1e9;
      add({
        name: `tcpreplay --topspeed${label}`,
        records: t.sent ?? n,
        perSec: (t.sent ?? n) / seconds,
        unit: 'packets/s',
        note: `${n.toLocaleString('en')} packets (its own send time), ${got.received.toLocaleString('en')} received${pinNote(cpus)}`,
      });
    }
  }
  return rows;
}

// ---------------------------------------------------------------- memory

interface MemoryRow {
  log: string;
  bytes: number;
  sink: string;
  peakRssMB: number;
  rssFileMB: number;
  firstRecordJsMs: number[];
  firstRecordEngineMs: number[];
}

async function memorySuite(): Promise<MemoryRow[]> {
  const rows: MemoryRow[] = [];
  const payload = blobPayload(1000);
  const recordBytes = 2070; // one line of a ~1000-byte payload, hex
  const logs = [
    generatedLog(`blob-${size.smallLogMB}MB`, Math.ceil((size.smallLogMB * 1e6) / recordBytes), 1_000_000, payload),
    generatedLog(`blob-${size.bigLogMB}MB`, Math.ceil((size.bigLogMB * 1e6) / recordBytes), 1_000_000, payload),
  ];
  log(`\n# Memory and start-up (peak RSS replaying at speed Infinity; then start() → first record, 10 times)`);
  for (const l of logs) {
    for (const sink of ['null', 'js'] as const) {
      const r = await contender({ kind: 'memory', log: l.path, sink, startups: 10 });
      const row: MemoryRow = {
        log: `${(l.bytes / 1e6).toFixed(0)} MB`,
        bytes: l.bytes,
        sink: sink === 'null' ? 'native, null sink' : 'JS listener, raw',
        peakRssMB: (r.peakRssKb as number) / 1024,
        rssFileMB: (r.rssFileKb as number) / 1024,
        firstRecordJsMs: (r.firstJsNs as number[]).map((x) => x / 1e6),
        firstRecordEngineMs: (r.firstEngineNs as number[]).map((x) => x / 1e6),
      };
      rows.push(row);
      log(
        `  ${row.log.padStart(8)} ${row.sink.padEnd(20)} peak RSS ${row.peakRssMB.toFixed(1)} MB` +
          `  first record: engine ${Math.max(...row.firstRecordEngineMs).toFixed(2)} ms, JS ${Math.max(...row.firstRecordJsMs).toFixed(2)} ms (max of 10)`,
      );
    }
  }
  return rows;
}

// ---------------------------------------------------------------- report

interface Target {
  what: string;
  target: string;
  measured: string;
  met: boolean;
}

function medianOf(schedule: string, name: string, pick: (r: TimingRun) => number): number {
  return median(timing.filter((r) => r.schedule === schedule && r.contender === name).map(pick));
}

interface PlayerRows {
  seek: SeekRow;
  drop: DropRow[];
}

function evaluate(micro: MicroResult[], throughput: ThroughputRow[], memory: MemoryRow[], pausedPct: number, player: PlayerRows): Target[] {
  const t: Target[] = [];
  const format = (value: number, unit: string) =>
    unit === 'µs' ? us(value) : unit === 'records' ? String(value) : value.toFixed(Math.abs(value) < 10 ? 2 : 1);
  const check = (what: string, target: string, value: number, met: boolean, unit = 'µs') =>
    t.push({
      what,
      target,
      measured: Number.isFinite(value) ? `${format(value, unit)} ${unit}` : 'not measured',
      met: Number.isFinite(value) && met,
    });
  const lost = timing.reduce((n, r) => n + r.stats.lost, 0);
  check('records lost, all timing runs', '0', lost, lost === 0, 'records');
  const s1k = 'steady-1kHz';
  const native = (p: (r: TimingRun) => number) => medianOf(s1k, 'netreplay native UDP', p);
  const p50 = native((r) => r.stats.latenessUs.p50);
  const p99 = native((r) => r.stats.latenessUs.p99);
  const p999 = native((r) => r.stats.latenessUs.p999);
  check('native UDP 1 kHz lateness p50', '≤ 5 µs', p50, p50 <= 5);
  check('native UDP 1 kHz lateness p99', '≤ 25 µs', p99, p99 <= 25);
  check('native UDP 1 kHz lateness p99.9', '≤ 200 µs', p999, p999 <= 200);
  const cpu1k = native((r) => r.cpuPct);
  check('native UDP 1 kHz: CPU of the replaying process (with p99 ≤ 25 µs above)', '≤ 10% of a core', cpu1k, cpu1k <= 10, '%');
  const p99at = (schedule: string) => medianOf(schedule, 'netreplay native UDP', (r) => r.stats.latenessUs.p99);
  check('native UDP 10 kHz lateness p99', '≤ 25 µs', p99at('steady-10kHz'), p99at('steady-10kHz') <= 25);
  check('native UDP 100 kHz lateness p99', '≤ 50 µs', p99at('steady-100kHz'), p99at('steady-100kHz') <= 50);
  const lost100k = medianOf('steady-100kHz', 'netreplay native UDP', (r) => r.stats.lost);
  const drift100k = medianOf('steady-100kHz', 'netreplay native UDP', (r) => Math.abs(r.stats.driftUs));
  check('native UDP 100 kHz: records lost', '0', lost100k, lost100k === 0, 'records');
  check('native UDP 100 kHz |drift|', '≤ 10 µs', drift100k, drift100k <= 10);
  const burst50 = medianOf('bursty', 'netreplay native UDP', (r) => r.stats.latenessUs.p50);
  const sendmmsg10 = wake.sendmmsg10x120B?.p50 ?? NaN;
  check(`native UDP bursts of 10: lateness p50 (the machine's bare sendmmsg of 10 datagrams: p50 ${us(sendmmsg10)} µs)`, '≤ 2 × sendmmsg of 10', burst50, burst50 <= 2 * sendmmsg10);
  // That call never wakes a receiver; every burst of the schedule does (the
  // receiver sleeps between bursts), which the bare pacer pays as well.
  const pacer50 = medianOf('bursty', BARE_PACER, (r) => r.stats.latenessUs.p50);
  check(`native UDP bursts of 10: lateness p50 (the bare pacer's sendmmsg bursts to the same receiver: p50 ${us(pacer50)} µs)`, '≤ 2 × bare pacer', burst50, burst50 <= 2 * pacer50);
  const drift = medianOf('drift-1kHz', 'netreplay native UDP', (r) => Math.abs(r.stats.driftUs));
  check(`native drift after ${size.drift.toLocaleString('en')} records (|mean offset end − start|)`, '≤ 10 µs', drift, drift <= 10);
  const js50 = medianOf(s1k, 'netreplay JS listener', (r) => r.stats.latenessUs.p50);
  const js99 = medianOf(s1k, 'netreplay JS listener', (r) => r.stats.latenessUs.p99);
  check('JS listener 1 kHz p50', '≤ 50 µs', js50, js50 <= 50);
  check('JS listener 1 kHz p99', '≤ 250 µs', js99, js99 <= 250);
  const base99 = medianOf(s1k, 'setTimeout + dgram', (r) => r.stats.latenessUs.p99);
  check('setTimeout baseline p99 ÷ native p99', '≥ 20×', base99 / p99, base99 / p99 >= 20, '×');
  if (tcpreplay) {
    const tr99 = medianOf(s1k, 'tcpreplay', (r) => r.stats.latenessUs.p99);
    const trDrift = medianOf(s1k, 'tcpreplay', (r) => r.stats.driftUs);
    check('tcpreplay p99 (native must be lower)', `> ${us(p99)} µs`, tr99, tr99 > p99);
    const nativeDrift = native((r) => Math.abs(r.stats.driftUs));
    check('native |drift| vs tcpreplay drift (1 kHz)', `≤ 10 µs (tcpreplay ${us(trDrift)} µs)`, nativeDrift, nativeDrift <= 10);
  }
  const gap = medianOf('long-gap', 'netreplay native UDP', (r) => r.gapCpuPct ?? NaN);
  check('CPU during a long gap (native)', '≤ 5% of a core', gap, gap <= 5, '%');
  check('CPU while paused (native)', '≤ 5% of a core', pausedPct, pausedPct <= 5, '%');
  const rate = (name: string) => throughput.find((r) => r.name === name)?.perSec ?? NaN;
  const m = (x: number) => x / 1e6;
  check('native null sink', '≥ 5 M records/s', m(rate('native, null sink')), rate('native, null sink') >= 5e6, 'M/s');
  check('JS listener raw', '≥ 2 M records/s', m(rate('JS listener, raw bytes')), rate('JS listener, raw bytes') >= 2e6, 'M/s');
  check('JS listener decoded', '≥ 0.5 M records/s', m(rate('JS listener, msgpackr-decoded')), rate('JS listener, msgpackr-decoded') >= 0.5e6, 'M/s');
  // The sink is judged with its receiver on another CPU when that can be
  // arranged: unpinned, the kernel's placement of the threads decides.
  const udpRow = pin ? 'native, UDP sink, pinned' : 'native, UDP sink';
  const ceiling = rate(pin ? 'ceiling: send() loop (Rust), pinned' : 'ceiling: send() loop (Rust)');
  const unpinned = pin ? `; the sink unpinned ${m(rate('native, UDP sink')).toFixed(3)} M/s` : '';
  check(
    `UDP sink${pin ? `, sender and receiver on CPUs ${pin.sender} and ${pin.receiver}` : ''} (a bare send() loop${pin ? ', pinned alike,' : ''} reaches ${m(ceiling).toFixed(3)} M/s${unpinned})`,
    '≥ 0.3 M datagrams/s',
    m(rate(udpRow)),
    rate(udpRow) >= 0.3e6,
    'M/s',
  );
  // Unpinned, against the bare loop unpinned: the ceiling of the same run.
  const sinkShare = (100 * rate('native, UDP sink')) / rate('ceiling: send() loop (Rust)');
  check(`UDP sink unpinned ÷ a bare send() loop unpinned (${m(rate('ceiling: send() loop (Rust)')).toFixed(3)} M/s)`, '≥ 95 %', sinkShare, sinkShare >= 95, '%');
  const decode = (micro[0]?.bytesPerSec ?? NaN) / 1e9;
  check('MCL text decode, one core', '≥ 1 GB/s', decode, decode >= 1, 'GB/s');
  for (const sink of ['native, null sink', 'JS listener, raw']) {
    const [small, big] = memory.filter((r) => r.sink === sink);
    if (small && big) {
      const growth = big.peakRssMB - small.peakRssMB;
      check(`peak RSS, ${big.log} log − ${small.log} log (${sink})`, '≤ 8 MB', growth, growth <= 8, 'MB');
    }
  }
  const first = Math.max(...memory.filter((r) => r.bytes === Math.max(...memory.map((x) => x.bytes))).flatMap((r) => r.firstRecordJsMs));
  check('start() → first record in JS, biggest log (max of runs)', '≤ 5 ms', first, first <= 5, 'ms');
  const seekMs = median(player.seek.engineMs);
  check(`seek() → first record delivered, ${player.seek.log} log (engine, median of ${player.seek.seeks})`, '≤ 1 ms', seekMs, seekMs <= 1, 'ms');
  const seekJs = median(player.seek.jsMs);
  check(`seek() → first record in JS, ${player.seek.log} log (median)`, '≤ 1 ms', seekJs, seekJs <= 1, 'ms');
  const seekRss = player.seek.rssAfterMB - player.seek.rssBeforeMB;
  check(`RSS growth over ${player.seek.seeks} seeks`, '≤ 8 MB', seekRss, seekRss <= 8, 'MB');
  const s10k = 'steady-10kHz';
  const normal = medianOf(s10k, 'netreplay native UDP', (r) => r.stats.latenessUs.p99);
  const besideJs = medianOf(s10k, DROP_CONTENDER, (r) => r.stats.latenessUs.p99);
  const besideBusy = medianOf(s10k, DROP_SPINNING, (r) => r.stats.latenessUs.p99);
  check(
    `UDP 10 kHz p99 beside a JS listener blocked 2 ms per message (lag 'drop'), vs ${us(normal)} µs without JS (blocked busy, a core taken: ${us(besideBusy)} µs)`,
    '≤ 2 × without JS',
    besideJs,
    besideJs <= 2 * normal,
  );
  for (const { name, js, dropped, records } of player.drop) {
    check(`${name}: JS received + dropped = records (${js} + ${dropped} of ${records})`, 'exact', js + dropped - records, js + dropped === records, 'records');
  }
  return t;
}

function machine() {
  return { ...machineInfo(), tcpreplay: tcpreplay ?? 'not installed' };
}

function writeResults(micro: MicroResult[], throughput: ThroughputRow[], memory: MemoryRow[], pausedPct: number, player: PlayerRows): void {
  mkdirSync(outDir, { recursive: true });
  const targets = evaluate(micro, throughput, memory, pausedPct, player);
  const info = machine();
  const date = new Date().toISOString();
  const results = {
    date,
    quick,
    machine: info,
    minutes: (Date.now() - started) / 60_000,
    skipped,
    wake,
    micro,
    timing: timing.map(({ sortedUs: _, ...rest }) => rest),
    throughput,
    memory,
    seek: player.seek,
    drop: player.drop,
    pausedCpuPct: pausedPct,
    targets,
  };
  writeFileSync(join(outDir, 'results.json'), JSON.stringify(results, null, 2) + '\n');

  const schedules = [...new Set(timing.map((r) => r.schedule))];
  for (const s of schedules) {
    // One series per contender: its median run by p99.
    const series = [...new Set(timing.filter((r) => r.schedule === s).map((r) => r.contender))].map((name) => {
      const runs = timing.filter((r) => r.schedule === s && r.contender === name).sort((a, b) => a.stats.latenessUs.p99 - b.stats.latenessUs.p99);
      return { name, sortedUs: runs[Math.floor((runs.length - 1) / 2)]!.sortedUs };
    });
    writeFileSync(join(outDir, `lateness-${s}.svg`), cdfSvg({ title: `Lateness against the schedule: ${s}`, series, yScale: 'tail' }));
  }
  writeFileSync(
    join(outDir, 'throughput.svg'),
    barSvg({
      title: 'Throughput at speed Infinity (millions per second)',
      unit: 'M/s',
      bars: throughput.map((r) => ({
        name: r.name,
        value: r.perSec / 1e6,
        ...({ 'native, null sink': { target: 5 }, 'JS listener, raw bytes': { target: 2 }, 'JS listener, msgpackr-decoded': { target: 0.5 }, 'native, UDP sink': { target: 0.3 }, 'native, UDP sink, pinned': { target: 0.3 } } as Record<string, { target: number }>)[r.name],
      })),
    }),
  );

  const md: string[] = [];
  md.push(`# netreplay measurements${quick ? ' (quick run)' : ''}`, '');
  md.push(`${date} · ${info.cpu}, ${info.cores} cores · Linux ${info.kernel} · Node ${info.node} · ${info.rustc} · tcpreplay ${info.tcpreplay}`, '');
  md.push(`Produced by \`npm run bench${quick ? ':quick' : ''}\` in ${results.minutes.toFixed(1)} minutes.`, '');
  if (skipped.length) md.push(...skipped.map((s) => `- skipped: ${s}`), '');
  md.push('## The machine', '');
  md.push(
    'What this machine does to any timing thread, measured by `netreplay-bench wake` before the suite: how late ' +
      'sleeps wake up (timer slack 1 ns), and how long a thread that never sleeps is kept off its core. µs.',
    '',
  );
  md.push(
    markdownTable(
      ['measure', 'count', 'p50', 'p99', 'p99.9', 'max', '> 250 µs'],
      Object.entries(wake).map(([name, w]) => [name, w.count, us(w.p50), us(w.p99), us(w.p999), us(w.max), w.over250us]),
    ),
    '',
  );
  md.push('## Targets', '');
  md.push(markdownTable(['what', 'target', 'measured', 'met'], targets.map((t) => [t.what, t.target, t.measured, t.met ? 'yes' : '**no**'])), '');
  md.push('## Timing fidelity', '');
  md.push(
    'Lateness = arrival − (origin + scheduled time), µs. Arrival: the kernel receive timestamp of the datagram on loopback ' +
      '(SO_TIMESTAMPNS); for the JS listener, the listener\'s own clock reading. Origin: when the contender put time 0 ' +
      'on its clock (netreplay: the engine\'s published anchor; the baseline: its start); tcpreplay reports none, so its ' +
      'first arrival is its origin. Drift = mean lateness of the last 1000 records − of the first 1000. ' +
      'Inter-arrival error = |Δarrival − Δschedule|. CPU = CPU time of the replaying process ÷ wall time.',
    '',
  );
  md.push(
    markdownTable(
      ['schedule', 'contender', 'run', 'p50', 'p90', 'p99', 'p99.9', 'max', 'drift', 'inter-arrival p99', 'lost', 'CPU %', 'gap CPU %'],
      timing.map((r) => [
        r.schedule,
        r.contender + (r.originNote ? ` (${r.originNote})` : ''),
        r.run,
        us(r.stats.latenessUs.p50),
        us(r.stats.latenessUs.p90),
        us(r.stats.latenessUs.p99),
        us(r.stats.latenessUs.p999),
        us(r.stats.latenessUs.max),
        us(r.stats.driftUs),
        us(r.stats.interArrivalErrorUs.p99),
        r.stats.lost,
        r.cpuPct.toFixed(1),
        r.gapCpuPct === undefined ? '' : r.gapCpuPct.toFixed(2),
      ]),
    ),
    '',
  );
  md.push(`CPU while paused (native, 2 s pause mid-replay): ${pausedPct.toFixed(2)}% of a core.`, '');
  for (const s of schedules) md.push(`![lateness ${s}](lateness-${s}.svg)`, '');
  md.push('## Throughput at speed Infinity', '');
  md.push(markdownTable(['contender', 'records', 'rate', 'note'], throughput.map((r) => [r.name, r.records.toLocaleString('en'), `${(r.perSec / 1e6).toFixed(2)} M ${r.unit}`, r.note ?? ''])), '');
  md.push('![throughput](throughput.svg)', '');
  md.push('## Micro-benchmarks (tinybench, median of iterations)', '');
  md.push(
    markdownTable(
      ['stage', 'median ms', 'records/s', 'MB/s'],
      micro.map((m) => [m.name, m.medianMs.toFixed(2), `${(m.recordsPerSec / 1e6).toFixed(2)} M`, m.bytesPerSec ? (m.bytesPerSec / 1e6).toFixed(0) : '']),
    ),
    '',
  );
  md.push('## Memory and start-up', '');
  md.push(
    markdownTable(
      ['log', 'delivery', 'peak RSS MB', 'file-backed RSS at end MB', 'start() → first record, engine ms (median / max)', 'in JS ms (median / max)'],
      memory.map((r) => [
        r.log,
        r.sink,
        r.peakRssMB.toFixed(1),
        r.rssFileMB.toFixed(1),
        `${median(r.firstRecordEngineMs).toFixed(3)} / ${Math.max(...r.firstRecordEngineMs).toFixed(3)}`,
        `${median(r.firstRecordJsMs).toFixed(3)} / ${Math.max(...r.firstRecordJsMs).toFixed(3)}`,
      ]),
    ),
    '',
  );
  const sk = player.seek;
  md.push(
    `## Seek while playing (${sk.log} log, ${sk.seeks} seeks across it)`,
    '',
    markdownTable(
      ['seek() → first record delivered', 'median ms', 'max ms'],
      [
        ['engine (its deadline: the handover)', median(sk.engineMs).toFixed(3), Math.max(...sk.engineMs).toFixed(3)],
        ['in JS', median(sk.jsMs).toFixed(3), Math.max(...sk.jsMs).toFixed(3)],
      ],
    ),
    '',
    `RSS ${sk.rssBeforeMB.toFixed(1)} MB before the seeks, ${sk.rssAfterMB.toFixed(1)} MB after.`,
    '',
    `## Drop policy`,
    '',
    `A JS listener blocked 2 ms per message beside the UDP sink at 10 kHz, JS delivery under \`lag: 'drop'\`; ` +
      `their UDP timing is in the steady-10kHz table.`,
    '',
    markdownTable(
      ['listener', 'JS received', 'dropped', 'records'],
      player.drop.map((d) => [d.name, String(d.js), String(d.dropped), String(d.records)]),
    ),
    '',
  );
  writeFileSync(join(outDir, 'results.md'), md.join('\n'));
  log(`\n# Targets`);
  for (const t of targets) log(`  ${t.met ? 'met   ' : 'MISSED'} ${t.what}: ${t.measured} (target ${t.target})`);
  log(`\nResults in ${outDir} (${results.minutes.toFixed(1)} minutes)`);
}

/** The 1 kHz rows of an `--only-1khz` run, without their lateness arrays. */
function writeTiming1kHz(): void {
  const rows = timing.map((r) => ({
    contender: r.contender,
    run: r.run,
    p50Us: r.stats.latenessUs.p50,
    p99Us: r.stats.latenessUs.p99,
    p999Us: r.stats.latenessUs.p999,
    maxUs: r.stats.latenessUs.max,
    driftUs: r.stats.driftUs,
    lost: r.stats.lost,
    cpuPct: r.cpuPct,
    ...(r.originNote && { originNote: r.originNote }),
  }));
  const path = timingJson ?? join(outDir, 'timing-1khz.json');
  if (!timingJson) mkdirSync(outDir, { recursive: true });
  writeFileSync(path, JSON.stringify({ machine: machine(), quick, skipped, wake, rows }, null, 2) + '\n');
  log(`\nRows in ${path}`);
}

// ---------------------------------------------------------------- main

try {
  log(`netreplay bench${quick ? ' (quick)' : ''}: ${cpus().length} × ${cpus()[0]?.model}, Node ${process.version}`);
  if (only1kHz) {
    // Just the 1 kHz schedule, every contender, beside the machine's own
    // timing (bench/formats.ts reads these rows).
    log(`\n# The machine: sleep wake-up overshoot and spinning-thread stalls (${size.wakeSeconds} s)`);
    wake = measureMachine(rxBin, size.wakeSeconds, log);
    await timeSchedule(steady(1000, size.steady1k), size.runs1k, 'all');
    writeTiming1kHz();
  } else {
    const big = generatedLog(`sensor-${size.throughput}`, size.throughput, 1_000, sensorPayload);
    const decodeRecords = Math.min(size.throughput, quick ? 200_000 : 500_000);
    const decodeLog = generatedLog(`sensor-${decodeRecords}`, decodeRecords, 1_000, sensorPayload);

    log(`\n# The machine: sleep wake-up overshoot and spinning-thread stalls (${size.wakeSeconds} s)`);
    wake = measureMachine(rxBin, size.wakeSeconds, log);

    log('\n# Micro-benchmarks (tinybench)');
    const micro = await runMicro({ decodeLog, deliveryLog: decodeLog, ringRecords: 1_000_000, iterations: size.micro });
    for (const m of micro) {
      log(`  ${m.name.padEnd(44)} ${m.medianMs.toFixed(2).padStart(8)} ms  ${(m.recordsPerSec / 1e6).toFixed(2)} M records/s` + (m.bytesPerSec ? `  ${(m.bytesPerSec / 1e6).toFixed(0)} MB/s` : ''));
    }

    await timeSchedule(steady(1000, size.steady1k), size.runs1k, 'all');
    await timeSchedule(steady(10_000, size.steady10k), 1, 'all');
    await timeSchedule(steady(100_000, size.steady100k), 1, 'native');
    const drop = await dropSchedule(steady(10_000, size.steady10k), 2);
    await timeSchedule(bursty(10, 10, size.bursts), 1, 'all');
    await timeSchedule(longGap(500, size.gapMs, 500), 1, 'all');
    await timeSchedule({ ...steady(1000, size.drift), name: 'drift-1kHz' }, 1, 'native', false);

    log('\n# CPU while paused');
    const pauseLog = writeScheduleLog(join(work, 'pause'), steady(1000, 4000));
    const rxPause = await startReceiver(rxBin, { out: join(work, 'rx.bin'), count: 4000, expect: 4000 });
    const paused = await contender({ kind: 'pause', log: pauseLog, port: rxPause.port, pauseAtMs: 1000, pauseForMs: 2000 });
    await rxPause.arrivals;
    const p = paused.paused as CpuSample;
    const pausedPct = cpuPercent(p.cpuUs, p.wallNs);
    log(`  native, paused: ${pausedPct.toFixed(2)}% of a core`);

    const throughput = await throughputSuite(big);
    const memory = await memorySuite();
    const seek = await seekSuite();
    writeResults(micro, throughput, memory, pausedPct, { seek, drop });
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
