// Timing of the playback-control features over UDP, measured at the
// kernel-timestamping receiver: `npm run bench:timeline` (about 3 minutes on
// 2 cores) or `npm run bench:timeline:quick` (under a minute, smaller).
//
//  0. the machine: how late sleeps wake, how long a spinning thread stalls;
//  1. loop seams at 1 kHz: lateness of the first records after each seam
//     against the rest (`loop`, and `loop` with `continuousTime`);
//  2. a fixed rate (`rate: { messagesPerSecond }`): accuracy and drift;
//  3. two processes with the same `startAt`: the gap between their first
//     datagrams, and each one's error against the start time;
//  4. `maxGap`: the gap across each capped idle stretch, and the total
//     duration, against the cap.
//
// Figures, not pass/fail: results in bench/results/timeline.{json,md} (the
// quick run: bench/results/quick/). Each run is its own contender process
// (bench/contender.ts, task native-udp) and every lateness is
// arrival − (origin + ideal time), the origin being the engine's published
// anchor (when log time 0 was due). Beside the figures, the machine's own
// ceiling: netreplay-bench wake (sleep overshoot, spin stalls), and the same
// timelines sent by netreplay-bench pace, a bare sender spinning between
// sends (its origin is the one it reports). Uses the built addon: run
// `npm run build` first.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Result, TaskPlayback } from './contender.js';
import { contender, machineInfo, measureMachine, median, root, us, type WakeSummary } from './lib/harness.js';
import { buildReceiver, clockOffset, paceSchedule, startReceiver, type Arrivals } from './lib/receiver.js';
import { markdownTable } from './lib/report.js';
import { bursty, steady, writeScheduleLog, type Schedule } from './lib/schedule.js';
import { distribution, linearFit, timingStats, type Distribution } from './lib/stats.js';
import { cappedGapIndices, cappedTimelineNs, fixedRateTimelineNs, loopPeriodNs, loopTimelineNs, seamLateness } from './lib/timeline.js';

const quick = process.argv.includes('--quick');
/** `--only loop,rate,startAt,maxGap`: run only these parts (for a look at one; the results files are not written). */
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',');
const runs = (part: string) => !only || only.includes(part);
const outDir = join(root, 'bench', 'results', ...(quick ? ['quick'] : []));
const work = mkdtempSync(join(tmpdir(), 'netreplay-timeline-'));
const started = Date.now();
/** The 1-minute load average at the start: others' work on a shared machine shows here. */
const loadAtStart = loadavg()[0]!;

/** Sizes; quick mode shrinks them so that the whole runs in under a minute. */
const size = quick
  ? { wakeSeconds: 4, loopRecords: 1000, passes: 3, loopRuns: 3, rateRecords: 20_000, rateRuns: 3, startAtReps: 3, gapStretches: 4, gapS: 1, gapRuns: 3 }
  : { wakeSeconds: 10, loopRecords: 1000, passes: 5, loopRuns: 4, rateRecords: 100_000, rateRuns: 3, startAtReps: 8, gapStretches: 10, gapS: 2, gapRuns: 4 };

/** Records after a seam that count as "after the seam". */
const AFTER_SEAM = 5;
const RATE = 10_000;
const MAX_GAP_S = 0.005;
/** Waits up to this long spun, in the maxGap diagnostic: every capped wait then spins. */
const GAP_BUSY_WAIT_S = 0.01;
/** The two processes' start time, this far after the parent picks it. */
const START_AHEAD_NS = 2_000_000_000;
const START_AT_RECORDS = 100;

const log = (...a: unknown[]) => console.log(...a);
const rxBin = buildReceiver(root);

/** Spread of one figure over the runs. */
interface Spread {
  median: number;
  min: number;
  max: number;
}

function spread(values: number[]): Spread {
  const finite = values.filter(Number.isFinite);
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite) };
}

/** "median (min–max)" of the runs, µs style. */
function cell(s: Spread, format: (x: number) => string = us): string {
  return s.min === s.max ? format(s.median) : `${format(s.median)} (${format(s.min)}–${format(s.max)})`;
}

/** One native-UDP replay to a fresh receiver: the contender's result and the arrivals. */
async function play(logPath: string, expect: number, count: number, playback: TaskPlayback, busyWait?: number): Promise<{ r: Result; a: Arrivals }> {
  const rx = await startReceiver(rxBin, { out: join(work, 'rx.bin'), count, expect });
  let r: Result;
  try {
    r = await contender({ kind: 'native-udp', log: logPath, port: rx.port, playback, ...(busyWait !== undefined && { busyWait }) });
  } catch (err) {
    rx.kill();
    throw err;
  }
  const a = await rx.arrivals;
  if (a.summary.noTimestamp > 0) log(`  (${a.summary.noTimestamp} datagrams without a kernel timestamp)`);
  return { r, a };
}

/**
 * The machine's ceiling for a timeline: `netreplay-bench pace` sending
 * datagram i at origin + timelineNs[i], spinning between sends, to a fresh
 * receiver; its origin and the arrivals (indices 0…length−1).
 */
async function paced(timelineNs: Float64Array): Promise<{ originNs: number; a: Arrivals }> {
  const scheduleFile = join(work, 'paced.times');
  writeFileSync(scheduleFile, timelineNs);
  const rx = await startReceiver(rxBin, { out: join(work, 'rx.bin'), count: timelineNs.length, expect: timelineNs.length });
  const { originNs } = await paceSchedule(rxBin, rx.port, scheduleFile).catch((err: unknown) => {
    rx.kill();
    throw err;
  });
  return { originNs, a: await rx.arrivals };
}

const CEILING = 'ceiling: bare spinning sender';

// ---------------------------------------------------------------- 1. loop seams

interface LoopRun {
  variant: string;
  run: number;
  received: number;
  expected: number;
  /** Lateness, µs: the first AFTER_SEAM records of passes 1…, and every record not among a pass's first AFTER_SEAM. */
  afterSeam: Distribution;
  elsewhere: Distribution;
  /** The first AFTER_SEAM records of pass 0 (the start), for reference. */
  start: Distribution;
  /** Records in each group. */
  counts: { afterSeam: number; elsewhere: number; start: number };
  /** First datagram's arrival − engine origin, µs: what deriving the origin from it would shift. */
  firstArrivalUs: number;
}

async function loopSuite(): Promise<LoopRun[]> {
  const s = steady(1000, size.loopRecords);
  const logPath = writeScheduleLog(join(work, 'loop'), s);
  const n = s.timesNs.length;
  const timeline = loopTimelineNs(s.timesNs, size.passes);
  log(
    `\n# 1. Loop seams: ${s.description} played with loop: ${size.passes}; pass k's record i due at origin + k·${(loopPeriodNs(s.timesNs) / 1e6).toFixed(0)} ms + t_i` +
      ` ("after seam": the first ${AFTER_SEAM} records of passes 1–${size.passes - 1}); the ceiling: that timeline sent by netreplay-bench pace; µs`,
  );
  const replay = (playback: TaskPlayback) => async () => {
    const { r, a } = await play(logPath, n * size.passes, n, playback);
    return { originNs: r.originNs!, a, seq: a.inOrder.seq };
  };
  const variants: [string, () => Promise<{ originNs: number; a: Arrivals; seq: ArrayLike<number> }>][] = [
    [`loop ${size.passes}`, replay({ loop: size.passes })],
    [`loop ${size.passes}, continuousTime`, replay({ loop: size.passes, continuousTime: true })],
    [
      CEILING,
      async () => {
        const { originNs, a } = await paced(timeline);
        // pace numbers the datagrams through the passes: back to the record of the log.
        return { originNs, a, seq: a.inOrder.seq.map((k) => k % n) };
      },
    ],
  ];
  const runs: LoopRun[] = [];
  // Variants alternate run by run, so that a noisy minute of the machine does not fall on one of them only.
  for (let run = 1; run <= size.loopRuns; run++) {
    for (const [variant, measure] of variants) {
      const { originNs, a, seq } = await measure();
      const split = seamLateness(seq, a.inOrder.rxNs, n, timeline, originNs, AFTER_SEAM);
      const row: LoopRun = {
        variant,
        run,
        received: a.inOrder.seq.length,
        expected: n * size.passes,
        afterSeam: distribution(split.afterSeam),
        elsewhere: distribution(split.elsewhere),
        start: distribution(split.start),
        counts: { afterSeam: split.afterSeam.length, elsewhere: split.elsewhere.length, start: split.start.length },
        firstArrivalUs: (a.inOrder.rxNs[0]! - originNs) / 1000,
      };
      runs.push(row);
      const d = (x: Distribution) => `p50 ${us(x.p50).padStart(5)} p99 ${us(x.p99).padStart(6)} max ${us(x.max).padStart(6)}`;
      log(
        `  ${variant.padEnd(29)} run ${run}: after seam ${d(row.afterSeam)} | elsewhere ${d(row.elsewhere)} | received ${row.received}/${row.expected}`,
      );
    }
  }
  return runs;
}

// ---------------------------------------------------------------- 2. fixed rate

interface RateRun {
  variant: string;
  run: number;
  received: number;
  expected: number;
  /** |arrival − (origin + n / rate)|, µs. */
  absErrorUs: Distribution;
  /** Signed lateness, µs. */
  latenessUs: Distribution;
  /** Mean lateness of the last 1000 records − of the first 1000, µs. */
  driftUs: number;
  /** Least-squares slope of lateness against the ideal time, ppm: over every record, and over the medians of 1000-record blocks (which a few ms stalls do not tilt). */
  slopePpm: number;
  blockSlopePpm: number;
  /** The rate the fit implies: rate / (1 + slope). */
  achievedPerSec: number;
}

async function rateSuite(): Promise<RateRun[]> {
  // Logged in bursts of equal times (100 s of log for 100 k records): a fixed rate ignores them.
  const s = bursty(10, 10, size.rateRecords / 10);
  const logPath = writeScheduleLog(join(work, 'rate'), s);
  const n = s.timesNs.length;
  const timeline = fixedRateTimelineNs(n, RATE);
  log(
    `\n# 2. Fixed rate: ${n.toLocaleString('en')} records (${s.description}) at rate ${RATE.toLocaleString('en')} msg/s;` +
      ` record n due at origin + n/${RATE} s; the ceiling: that timeline sent by netreplay-bench pace; µs`,
  );
  const runs: RateRun[] = [];
  const variants: [string, () => Promise<{ originNs: number; a: Arrivals }>][] = [
    [
      `rate ${RATE} msg/s`,
      async () => {
        const { r, a } = await play(logPath, n, n, { rate: { messagesPerSecond: RATE } });
        return { originNs: r.originNs!, a };
      },
    ],
    [CEILING, () => paced(timeline)],
  ];
  for (let run = 1; run <= size.rateRuns; run++) for (const [variant, measure] of variants) {
    const { originNs, a } = await measure();
    const input = { scheduleNs: timeline, arrivalNs: a.arrivalNs, originNs, window: 1000 };
    const stats = timingStats(input);
    const lateNs = Float64Array.from(a.arrivalNs, (x, i) => x - originNs - timeline[i]!);
    const fit = linearFit(timeline, lateNs);
    const blocks = Math.floor(n / 1000);
    const blockX = Float64Array.from({ length: blocks }, (_, b) => timeline[b * 1000 + 500]!);
    const blockY = Float64Array.from({ length: blocks }, (_, b) => distribution(lateNs.subarray(b * 1000, (b + 1) * 1000)).p50);
    const blockFit = linearFit(blockX, blockY);
    const row: RateRun = {
      variant,
      run,
      received: stats.received,
      expected: n,
      absErrorUs: distribution(lateNs.map((x) => Math.abs(x) / 1000)),
      latenessUs: stats.latenessUs,
      driftUs: stats.driftUs,
      slopePpm: fit.slope * 1e6,
      blockSlopePpm: blockFit.slope * 1e6,
      achievedPerSec: RATE / (1 + fit.slope),
    };
    runs.push(row);
    log(
      `  ${variant.padEnd(29)} run ${run}: |error| p50 ${us(row.absErrorUs.p50)} p99 ${us(row.absErrorUs.p99)} max ${us(row.absErrorUs.max)}` +
        `  drift ${us(row.driftUs)} µs  slope ${row.slopePpm.toFixed(3)} ppm (block medians ${row.blockSlopePpm.toFixed(3)})  achieved ${row.achievedPerSec.toFixed(1)} msg/s  received ${row.received}/${n}`,
    );
  }
  return runs;
}

// ---------------------------------------------------------------- 3. startAt

interface StartAtRep {
  rep: number;
  /** First datagram of process B − of process A at the receiver, µs (signed). */
  firstGapUs: number;
  /** Each process's first datagram − startAt (converted to CLOCK_MONOTONIC), µs. */
  errorAUs: number;
  errorBUs: number;
  /** |A_i − B_i| over the records both sent, µs: the two stay together. */
  pairGapUs: Distribution;
  /** The engine's own conversion (its anchor) − ours, µs. */
  anchorVsOursAUs: number;
  anchorVsOursBUs: number;
  /** The engine's own maximum send lateness (deadline → send() returned) in each child, µs. */
  engineSendMaxAUs: number;
  engineSendMaxBUs: number;
  /** startAt − start() in each child, ms: the child was ready this much ahead. */
  marginAMs: number;
  marginBMs: number;
  /** The control: process A alone with a startAt of its own, its first datagram − startAt, µs. */
  aloneErrorUs: number;
  aloneEngineSendMaxUs: number;
  /** CLOCK_REALTIME − CLOCK_MONOTONIC moved by this much over the repetition, ns. */
  offsetDriftNs: number;
  bracketNs: number;
  received: number;
}

/**
 * The logs played at once, each by its own process, all with startAt =
 * now + START_AHEAD_NS, to one receiver: the children's results, the
 * arrivals, and startAt on CLOCK_MONOTONIC.
 */
async function startTogether(logs: string[], records: number) {
  const rx = await startReceiver(rxBin, { out: join(work, 'rx-start.bin'), count: 2 * records, expect: logs.length * records });
  const off = clockOffset(rxBin);
  // Now on CLOCK_REALTIME, from the monotonic clock and the measured offset (Date.now() has only ms).
  const startAt = BigInt(Number(process.hrtime.bigint())) + off.offsetNs + BigInt(START_AHEAD_NS);
  const startAtMono = Number(startAt - off.offsetNs);
  let results: Result[];
  try {
    results = await Promise.all(logs.map((l) => contender({ kind: 'native-udp', log: l, port: rx.port, playback: { startAt: startAt.toString() } })));
  } catch (err) {
    rx.kill();
    throw err;
  }
  const a = await rx.arrivals;
  const after = clockOffset(rxBin);
  return {
    results,
    a,
    startAtMono,
    offsetDriftNs: Number(after.offsetNs - off.offsetNs),
    bracketNs: Math.max(off.bracketNs, after.bracketNs, a.summary.bracketNs),
  };
}

async function startAtSuite(): Promise<StartAtRep[]> {
  const n = START_AT_RECORDS;
  const s = steady(1000, n);
  const logA = writeScheduleLog(join(work, 'start-a'), s);
  const logB = writeScheduleLog(join(work, 'start-b'), s, 'Bench', n);
  log(
    `\n# 3. Two processes, the same startAt (= now + ${START_AHEAD_NS / 1e9} s, CLOCK_REALTIME): ${s.description} each, to one receiver` +
      ` (process A's records numbered 0–${n - 1}, B's ${n}–${2 * n - 1}); then A alone, the control; µs`,
  );
  const reps: StartAtRep[] = [];
  for (let rep = 1; rep <= size.startAtReps; rep++) {
    const pair = await startTogether([logA, logB], n);
    const [ra, rb] = pair.results as [Result, Result];
    const arr = pair.a.arrivalNs;
    const alone = await startTogether([logA], n);
    const pairs: number[] = [];
    for (let i = 0; i < n; i++) pairs.push(Math.abs(arr[n + i]! - arr[i]!) / 1000);
    const row: StartAtRep = {
      rep,
      firstGapUs: (arr[n]! - arr[0]!) / 1000,
      errorAUs: (arr[0]! - pair.startAtMono) / 1000,
      errorBUs: (arr[n]! - pair.startAtMono) / 1000,
      pairGapUs: distribution(pairs),
      anchorVsOursAUs: (ra.originNs! - pair.startAtMono) / 1000,
      anchorVsOursBUs: (rb.originNs! - pair.startAtMono) / 1000,
      engineSendMaxAUs: sendMaxUs(ra),
      engineSendMaxBUs: sendMaxUs(rb),
      marginAMs: (pair.startAtMono - (ra.startCalledNs as number)) / 1e6,
      marginBMs: (pair.startAtMono - (rb.startCalledNs as number)) / 1e6,
      aloneErrorUs: (alone.a.arrivalNs[0]! - alone.startAtMono) / 1000,
      aloneEngineSendMaxUs: sendMaxUs(alone.results[0]!),
      offsetDriftNs: pair.offsetDriftNs,
      bracketNs: pair.bracketNs,
      received: pair.a.received,
    };
    reps.push(row);
    log(
      `  rep ${rep}: first B − first A ${us(row.firstGapUs).padStart(6)}  error A ${us(row.errorAUs).padStart(6)}  B ${us(row.errorBUs).padStart(6)}` +
        `  |A_i − B_i| p50 ${us(row.pairGapUs.p50)} max ${us(row.pairGapUs.max)}  anchor − ours ${us(row.anchorVsOursAUs)}/${us(row.anchorVsOursBUs)}` +
        `  engine send max ${us(row.engineSendMaxAUs)}/${us(row.engineSendMaxBUs)}  ready ${row.marginAMs.toFixed(0)}/${row.marginBMs.toFixed(0)} ms ahead` +
        `  received ${row.received}/${2 * n}  | alone: error ${us(row.aloneErrorUs)}, engine send max ${us(row.aloneEngineSendMaxUs)}`,
    );
  }
  return reps;
}

/** The engine's maximum send lateness of a native-UDP contender, µs. */
function sendMaxUs(r: Result): number {
  return ((r.sendLateness as { max: number } | undefined)?.max ?? NaN) * 1e6;
}

// ---------------------------------------------------------------- 4. maxGap

interface GapRun {
  /** maxGap on the idle log, or the control: the same timeline logged, no maxGap. */
  variant: string;
  run: number;
  received: number;
  expected: number;
  /** Measured gap across each capped stretch (the control: each 5 ms gap) − 5 ms, µs; and its absolute value. */
  gapErrorUs: Distribution;
  gapAbsErrorUs: Distribution;
  /** Lateness of the record after each such gap, µs (the gap error is it less the record before's). */
  afterGapLatenessUs: Distribution;
  /** Lateness of the first and the last record, µs: duration − expected = last − first. */
  firstLatenessUs: number;
  lastLatenessUs: number;
  /** Last arrival − first, and the capped timeline's span, ms. */
  durationMs: number;
  expectedMs: number;
  /** Lateness of every record against the capped timeline, µs. */
  latenessUs: Distribution;
}

const PER_STRETCH = 100;

/** `stretches` runs of PER_STRETCH records 1 ms apart, `gapS` between the last of one and the first of the next. */
function idleStretches(stretches: number, gapS: number): Schedule {
  const timesNs = new Float64Array(stretches * PER_STRETCH);
  const stride = (PER_STRETCH - 1) * 1e6 + Math.round(gapS * 1e9);
  for (let k = 0; k < stretches; k++) for (let i = 0; i < PER_STRETCH; i++) timesNs[k * PER_STRETCH + i] = k * stride + i * 1e6;
  return {
    name: `stretches-${gapS}s`,
    description: `${stretches} stretches of ${PER_STRETCH} records 1 ms apart, ${gapS >= 1 ? `${gapS} s` : `${gapS * 1000} ms`} between them`,
    timesNs,
  };
}

async function maxGapSuite(): Promise<GapRun[]> {
  const idle = idleStretches(size.gapStretches, size.gapS);
  // The control: what maxGap should turn the idle log into, logged as such.
  const control = idleStretches(size.gapStretches, MAX_GAP_S);
  const n = idle.timesNs.length;
  const maxGapNs = MAX_GAP_S * 1e9;
  const timeline = cappedTimelineNs(idle.timesNs, maxGapNs);
  const capped = cappedGapIndices(idle.timesNs, maxGapNs);
  if (timeline.some((t, i) => t !== control.timesNs[i])) throw new Error('the control log is not the capped timeline');
  const expectedMs = (timeline[n - 1]! - timeline[0]!) / 1e6;
  log(
    `\n# 4. maxGap ${MAX_GAP_S * 1000} ms: ${idle.description} (${(idle.timesNs[n - 1]! / 1e9).toFixed(2)} s of log, ${expectedMs.toFixed(0)} ms capped;` +
      ` ${capped.length} capped gaps); control: ${control.description}, no maxGap (the same timeline);` +
      ` diagnostics: maxGap with busyWait ${GAP_BUSY_WAIT_S * 1000} ms (the 5 ms waits spun, not slept), and the machine's ceiling:` +
      ` the capped timeline sent by a bare spinning sender (netreplay-bench pace); µs`,
  );
  const runs: GapRun[] = [];
  const idleLog = writeScheduleLog(join(work, idle.name), idle);
  const controlLog = writeScheduleLog(join(work, control.name), control);
  const replay = (logPath: string, playback: TaskPlayback, busyWait?: number) => async () => {
    const { r, a } = await play(logPath, n, n, playback, busyWait);
    return { originNs: r.originNs!, a };
  };
  const variants: [string, () => Promise<{ originNs: number; a: Arrivals }>][] = [
    [`maxGap ${MAX_GAP_S * 1000} ms, ${size.gapS} s gaps`, replay(idleLog, { maxGap: MAX_GAP_S })],
    [`control: ${MAX_GAP_S * 1000} ms gaps logged`, replay(controlLog, {})],
    // Diagnostics: the capped waits spun through instead of slept (the cap or the sleep?), and the machine's ceiling.
    [`maxGap ${MAX_GAP_S * 1000} ms, busyWait ${GAP_BUSY_WAIT_S * 1000} ms`, replay(idleLog, { maxGap: MAX_GAP_S }, GAP_BUSY_WAIT_S)],
    [CEILING, () => paced(timeline)],
  ];
  // Alternating run by run, as the loop variants.
  for (let run = 1; run <= size.gapRuns; run++) {
    for (const [variant, measure] of variants) {
      const { originNs, a } = await measure();
      const errors = capped.map((i) => (a.arrivalNs[i]! - a.arrivalNs[i - 1]! - maxGapNs) / 1000);
      const lateUs = (i: number) => (a.arrivalNs[i]! - originNs - timeline[i]!) / 1000;
      const row: GapRun = {
        variant,
        run,
        received: a.received,
        expected: n,
        gapErrorUs: distribution(errors),
        gapAbsErrorUs: distribution(errors.map(Math.abs)),
        afterGapLatenessUs: distribution(capped.map(lateUs)),
        firstLatenessUs: lateUs(0),
        lastLatenessUs: lateUs(n - 1),
        durationMs: (a.arrivalNs[n - 1]! - a.arrivalNs[0]!) / 1e6,
        expectedMs,
        latenessUs: timingStats({ scheduleNs: timeline, arrivalNs: a.arrivalNs, originNs }).latenessUs,
      };
      runs.push(row);
      log(
        `  ${variant.padEnd(32)} run ${run}: gap − ${MAX_GAP_S * 1000} ms p50 ${us(row.gapErrorUs.p50)} |max| ${us(row.gapAbsErrorUs.max)}` +
          `  after-gap lateness p50 ${us(row.afterGapLatenessUs.p50)}  duration ${row.durationMs.toFixed(3)} ms (expected ${expectedMs.toFixed(3)};` +
          ` first record ${us(row.firstLatenessUs)} µs late, last ${us(row.lastLatenessUs)})  lateness p50 ${us(row.latenessUs.p50)} max ${us(row.latenessUs.max)}  received ${row.received}/${n}`,
      );
    }
  }
  return runs;
}

// ---------------------------------------------------------------- report

function tables(wake: Record<string, WakeSummary>, loop: LoopRun[], rate: RateRun[], startAt: StartAtRep[], gaps: GapRun[]): string[] {
  const across = <T>(runs: T[], f: (r: T) => number) => spread(runs.map(f));
  const out: string[] = [];
  out.push(
    '### The machine (netreplay-bench wake, µs)',
    '',
    markdownTable(
      ['measure', 'count', 'p50', 'p99', 'p99.9', 'max', '> 250 µs'],
      Object.entries(wake).map(([name, w]) => [name, w.count, us(w.p50), us(w.p99), us(w.p999), us(w.max), w.over250us]),
    ),
  );
  const variants = [...new Set(loop.map((r) => r.variant))];
  if (loop.length) out.push(
    `### 1. Loop seams at 1 kHz (lateness µs; median of ${size.loopRuns} runs, (min–max))`,
    '',
    markdownTable(
      ['variant', 'records', 'p50', 'p99', 'max', 'received'],
      variants.flatMap((v) => {
        const runs = loop.filter((r) => r.variant === v);
        const row = (label: string, d: (r: LoopRun) => Distribution, count: (r: LoopRun) => number) => [
          `${v}: ${label}`,
          String(median(runs.map(count))),
          cell(across(runs, (r) => d(r).p50)),
          cell(across(runs, (r) => d(r).p99)),
          cell(across(runs, (r) => d(r).max)),
          runs.map((r) => `${r.received}/${r.expected}`).join(', '),
        ];
        return [
          row(`after seam (first ${AFTER_SEAM} of passes 1–${size.passes - 1})`, (r) => r.afterSeam, (r) => r.counts.afterSeam),
          row(`elsewhere (not among a pass's first ${AFTER_SEAM})`, (r) => r.elsewhere, (r) => r.counts.elsewhere),
          row(`for reference, the start (first ${AFTER_SEAM} of pass 0)`, (r) => r.start, (r) => r.counts.start),
        ];
      }),
    ),
  );
  if (rate.length) out.push(
    `### 2. Fixed rate ${RATE.toLocaleString('en')} msg/s over ${size.rateRecords.toLocaleString('en')} records (µs; median of ${size.rateRuns} runs, (min–max))`,
    '',
    markdownTable(
      ['variant', '|error| p50', '|error| p99', '|error| max', 'drift (last 1000 − first 1000)', 'slope ppm (all records)', 'slope ppm (1000-record medians)', 'achieved msg/s (fit, all)'],
      [...new Set(rate.map((r) => r.variant))].map((v) => {
        const runs = rate.filter((r) => r.variant === v);
        return [
          v,
          cell(across(runs, (r) => r.absErrorUs.p50)),
          cell(across(runs, (r) => r.absErrorUs.p99)),
          cell(across(runs, (r) => r.absErrorUs.max)),
          cell(across(runs, (r) => r.driftUs)),
          cell(across(runs, (r) => r.slopePpm), (x) => x.toFixed(3)),
          cell(across(runs, (r) => r.blockSlopePpm), (x) => x.toFixed(3)),
          cell(across(runs, (r) => r.achievedPerSec), (x) => x.toFixed(2)),
        ];
      }),
    ),
  );
  if (startAt.length) out.push(
    `### 3. Two processes, same startAt (µs; median of ${startAt.length} repetitions, (min–max))`,
    '',
    markdownTable(
      ['first B − first A', '|first B − first A|', 'reps ≤ 100 µs apart', 'error A vs startAt', 'error B vs startAt', 'A alone vs startAt', '|A_i − B_i| p50', '|A_i − B_i| max', 'engine anchor − our conversion', 'child ready ahead (ms)'],
      [
        [
          cell(across(startAt, (r) => r.firstGapUs)),
          cell(across(startAt, (r) => Math.abs(r.firstGapUs))),
          `${startAt.filter((r) => Math.abs(r.firstGapUs) <= 100).length} of ${startAt.length}`,
          cell(across(startAt, (r) => r.errorAUs)),
          cell(across(startAt, (r) => r.errorBUs)),
          cell(across(startAt, (r) => r.aloneErrorUs)),
          cell(across(startAt, (r) => r.pairGapUs.p50)),
          cell(across(startAt, (r) => r.pairGapUs.max)),
          cell(spread(startAt.flatMap((r) => [r.anchorVsOursAUs, r.anchorVsOursBUs]))),
          cell(spread(startAt.flatMap((r) => [r.marginAMs, r.marginBMs])), (x) => x.toFixed(0)),
        ],
      ],
    ),
  );
  const g = gaps[0];
  if (g) out.push(
    `### 4. maxGap ${MAX_GAP_S * 1000} ms (µs unless said; median of ${size.gapRuns} runs, (min–max)); the control logs the capped timeline and plays it without maxGap; the busyWait row spins through the 5 ms waits instead of sleeping; the ceiling row is netreplay-bench pace sending the capped timeline, spinning between sends`,
    '',
    markdownTable(
      ['variant', 'gap − 5 ms p50', '|gap − 5 ms| max', 'lateness after a gap p50', 'duration ms', 'expected ms', 'first record late', 'lateness p50 (all)', 'lateness p99', 'lateness max'],
      [...new Set(gaps.map((r) => r.variant))].map((v) => {
        const runs = gaps.filter((r) => r.variant === v);
        return [
          v,
          cell(across(runs, (r) => r.gapErrorUs.p50)),
          cell(across(runs, (r) => r.gapAbsErrorUs.max)),
          cell(across(runs, (r) => r.afterGapLatenessUs.p50)),
          cell(across(runs, (r) => r.durationMs), (x) => x.toFixed(3)),
          g.expectedMs.toFixed(3),
          cell(across(runs, (r) => r.firstLatenessUs)),
          cell(across(runs, (r) => r.latenessUs.p50)),
          cell(across(runs, (r) => r.latenessUs.p99)),
          cell(across(runs, (r) => r.latenessUs.max)),
        ];
      }),
    ),
  );
  return out;
}

// ---------------------------------------------------------------- main

try {
  log(`netreplay timeline bench${quick ? ' (quick)' : ''}: ${cpus().length} × ${cpus()[0]?.model}, Node ${process.version}`);
  log(`\n# The machine: sleep wake-up overshoot and spinning-thread stalls (${size.wakeSeconds} s)`);
  const wake = measureMachine(rxBin, size.wakeSeconds, log);
  const loop = runs('loop') ? await loopSuite() : [];
  const rate = runs('rate') ? await rateSuite() : [];
  const startAt = runs('startAt') ? await startAtSuite() : [];
  const maxGap = runs('maxGap') ? await maxGapSuite() : [];
  const date = new Date().toISOString();
  const minutes = (Date.now() - started) / 60_000;
  const text = tables(wake, loop, rate, startAt, maxGap);
  log('\n' + text.join('\n'));
  if (!only) {
    mkdirSync(outDir, { recursive: true });
    const results = {
      date,
      quick,
      machine: machineInfo(),
      minutes,
      loadAverage1m: { start: loadAtStart, end: loadavg()[0]! },
      origin:
        'the engine anchor (replay.stats().anchor: wallNs − logNs, CLOCK_MONOTONIC); the ceiling rows: the origin netreplay-bench pace reports; ' +
        'receiver times: SO_TIMESTAMPNS (CLOCK_REALTIME) converted by rx to CLOCK_MONOTONIC; startAt converted with netreplay-bench offset',
      wake,
      loop: { records: size.loopRecords, passes: size.passes, afterSeam: AFTER_SEAM, runs: loop },
      rate: { messagesPerSecond: RATE, records: size.rateRecords, runs: rate },
      startAt: { aheadNs: START_AHEAD_NS, records: START_AT_RECORDS, reps: startAt },
      maxGap: { maxGapS: MAX_GAP_S, stretches: size.gapStretches, perStretch: PER_STRETCH, gapS: size.gapS, runs: maxGap },
    };
    writeFileSync(join(outDir, 'timeline.json'), JSON.stringify(results, null, 2) + '\n');
    const info = results.machine;
    writeFileSync(
      join(outDir, 'timeline.md'),
      [
        `# netreplay playback-control timing${quick ? ' (quick run)' : ''}`,
        '',
        `${date} · ${info.cpu}, ${info.cores} cores · Linux ${info.kernel} · Node ${info.node} · ${info.rustc}`,
        '',
        `Produced by \`npm run bench:timeline${quick ? ':quick' : ''}\` in ${minutes.toFixed(1)} minutes. Lateness = kernel receive time ` +
          `(SO_TIMESTAMPNS on loopback, converted to CLOCK_MONOTONIC) − (origin + ideal time); origin = the engine's published anchor ` +
          `(the ceiling rows: the origin of netreplay-bench pace, a bare sender spinning between sends). ` +
          `startAt (CLOCK_REALTIME) is converted to CLOCK_MONOTONIC with netreplay-bench offset, as rx converts its timestamps.`,
        '',
        ...text,
      ].join('\n'),
    );
    log(`\nResults in ${outDir} (${minutes.toFixed(1)} minutes)`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
