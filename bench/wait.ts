// The wait policies' trade-off: CPU against lateness, at 1 kHz to a loopback
// UDP receiver with kernel receive timestamps, with no load and with one
// competing busy process per core. `npm run bench:wait` (about 4 minutes),
// `-- --quick` (about 1 minute), `-- --runs N`, `-- --loads none,busy`,
// `-- --policies default,spin,...`, `-- --rate HZ`, `-- --count N` (records,
// default 3,000), `-- --schedule bursty` (bursts of 10 equal-time records
// every 10 ms instead of a steady rate), `-- --name NAME` (the results' file
// name, default wait or wait-bursty).
//
// Each policy is a Replay option set (js: false, UDP sink); runs alternate
// between the policies so that a change of the machine's speed during the
// run falls on all of them alike. The machine check (sleep overshoot, spin
// stalls) runs first, under each load, as the floor to read them against.
//
// Results: bench/results/wait.{json,md} and wait-curve.svg, or wait-bursty.*
// with `--schedule bursty` (quick:
// bench/results/quick/).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { contender, cpuPercent, machineInfo, measureMachine, median, root, us, type WakeSummary } from './lib/harness.js';
import { buildReceiver, startReceiver } from './lib/receiver.js';
import { markdownTable, scatterSvg } from './lib/report.js';
import { bursty, steady, writeScheduleLog } from './lib/schedule.js';
import { timingStats } from './lib/stats.js';

const argv = process.argv.slice(2);
const flag = (name: string) => {
  const at = argv.indexOf(name);
  return at >= 0 ? argv[at + 1] : undefined;
};
const quick = argv.includes('--quick');
const runs = Number(flag('--runs') ?? (quick ? 2 : 5));
const rateHz = Number(flag('--rate') ?? 1000);
const count = Number(flag('--count') ?? (quick ? 2_000 : 3_000));
const scheduleKind = flag('--schedule') ?? 'steady';
if (scheduleKind !== 'steady' && scheduleKind !== 'bursty') throw new Error(`--schedule: steady or bursty, got ${scheduleKind}`);
const loads = (flag('--loads') ?? 'none,busy').split(',') as Load[];
type Load = 'none' | 'busy';

/** The policies measured: name → the Replay's options (undefined: the default). */
const POLICIES: Record<string, { busyWait?: number; spinMargin?: number; realtime?: boolean; note: string }> = {
  default: { note: 'the default: the spin margin learned from the wake-ups, at most a quarter of each wait; the real-time class where permitted' },
  'normal class': { realtime: false, note: 'the default margin in the normal class, with the short slice (realtime: false; the default before the real-time class)' },
  'margin 20 µs': { spinMargin: 20e-6, note: 'spinMargin 20 µs: sleep until 20 µs before each deadline' },
  'margin 50 µs': { spinMargin: 50e-6, note: 'spinMargin 50 µs' },
  'margin 100 µs': { spinMargin: 100e-6, note: 'spinMargin 100 µs' },
  'margin 250 µs': { spinMargin: 250e-6, note: 'spinMargin 250 µs (what `busyWait: 0` spun before adaptive waiting)' },
  spin: { busyWait: 0.0015, note: 'busyWait 1.5 ms: spin through every wait up to 1.5 ms (the default before adaptive waiting)' },
};
const policies = (flag('--policies') ?? Object.keys(POLICIES).join(',')).split(',');
for (const p of policies) if (!POLICIES[p]) throw new Error(`unknown policy ${p}: one of ${Object.keys(POLICIES).join(', ')}`);

const outDir = join(root, 'bench', 'results', ...(quick ? ['quick'] : []));
/** Output files: wait.* for the steady schedule, wait-bursty.* for bursts. */
const outName = flag('--name') ?? (scheduleKind === 'bursty' ? 'wait-bursty' : 'wait');
const work = mkdtempSync(join(tmpdir(), 'netreplay-wait-'));
const log = (...a: unknown[]) => console.log(...a);

/** One busy process per core: each spins forever until killed. */
function startLoad(load: Load): ChildProcess[] {
  if (load === 'none') return [];
  return cpus().map(() => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
}

interface Row {
  load: Load;
  policy: string;
  run: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  cpuPct: number;
  lost: number;
  /** The spin margin at the end of the run, µs. */
  marginUs: number;
  timingSlice: boolean;
  /** Whether the scheduler thread waited in the real-time class. */
  realtime: boolean;
}

const rxBin = buildReceiver(root);
const schedule = scheduleKind === 'bursty' ? bursty(10, 10, count / 10) : steady(rateHz, count);
const logPath = writeScheduleLog(join(work, schedule.name), schedule);
const rows: Row[] = [];
const machine: Partial<Record<Load, Record<string, WakeSummary>>> = {};

async function once(load: Load, policy: string, run: number): Promise<void> {
  const rx = await startReceiver(rxBin, { out: join(work, 'rx.bin'), count, expect: count, idleMs: 3000 });
  const { busyWait, spinMargin, realtime } = POLICIES[policy]!;
  let r;
  try {
    r = await contender({
      kind: 'native-udp',
      log: logPath,
      port: rx.port,
      ...(busyWait !== undefined && { busyWait }),
      ...(spinMargin !== undefined && { spinMargin }),
      ...(realtime !== undefined && { realtime }),
    });
  } catch (err) {
    rx.kill();
    throw err;
  }
  const arrivals = await rx.arrivals;
  const stats = timingStats({ scheduleNs: schedule.timesNs, arrivalNs: arrivals.arrivalNs, originNs: r.originNs! });
  const l = stats.latenessUs;
  const row: Row = { load, policy, run, p50: l.p50, p99: l.p99, p999: l.p999, max: l.max, cpuPct: cpuPercent(r.cpuUs, r.wallNs), lost: stats.lost, marginUs: (r.spinMargin as number) * 1e6, timingSlice: r.timingSlice as boolean, realtime: r.realtime as boolean };
  rows.push(row);
  log(`  ${load.padEnd(5)} ${policy.padEnd(16)} run ${run}  p50 ${us(row.p50).padStart(6)}  p99 ${us(row.p99).padStart(6)}  p99.9 ${us(row.p999).padStart(6)}  max ${us(row.max).padStart(7)} µs  cpu ${row.cpuPct.toFixed(1)}%  lost ${row.lost}  margin ${us(row.marginUs)} µs${row.realtime ? '  (real-time class)' : row.timingSlice ? '' : '  (no short slice)'}`);
}

log(`# wait policies: ${schedule.description}, ${runs} runs each, loads ${loads.join(', ')}`);
for (const load of loads) {
  const busy = startLoad(load);
  try {
    log(`\n## load: ${load === 'none' ? 'none' : `one busy process per core (${busy.length})`}`);
    machine[load] = measureMachine(rxBin, quick ? 2 : 4, (line) => log(line));
    for (let run = 1; run <= runs; run++) for (const policy of policies) await once(load, policy, run);
  } finally {
    for (const p of busy) p.kill('SIGKILL');
  }
}

// ---------------------------------------------------------------- report

const summary = loads.flatMap((load) =>
  policies.map((policy) => {
    const mine = rows.filter((r) => r.load === load && r.policy === policy);
    return {
      load,
      policy,
      p50: median(mine.map((r) => r.p50)),
      p99: median(mine.map((r) => r.p99)),
      cpuPct: median(mine.map((r) => r.cpuPct)),
      p99s: mine.map((r) => r.p99),
      cpus: mine.map((r) => r.cpuPct),
    };
  }),
);

// The targets of the default policy: quiet, p99 ≤ 25 µs at ≤ 10% of a core;
// under load, p99 ≤ 100 µs in at least 4 of 5 runs.
const mine = (load: Load) => rows.filter((r) => r.load === load && r.policy === 'default');
const quiet = summary.find((x) => x.load === 'none' && x.policy === 'default');
const underLoad = mine('busy');
const held = underLoad.filter((r) => r.p99 <= 100).length;
const sendmmsg10 = machine.none?.sendmmsg10x120B?.p50 ?? NaN;
const targets =
  scheduleKind === 'bursty'
    ? quiet
      ? [{ what: `default, no load: burst p50 ≤ 2 × the machine's bare sendmmsg of 10 (${us(sendmmsg10)} µs)`, measured: `p50 ${us(quiet.p50)} µs`, met: quiet.p50 <= 2 * sendmmsg10 }]
      : []
    : [
        ...(quiet ? [{ what: 'default, no load: p99 ≤ 25 µs and CPU ≤ 10% (medians)', measured: `p99 ${us(quiet.p99)} µs, CPU ${quiet.cpuPct.toFixed(1)}%`, met: quiet.p99 <= 25 && quiet.cpuPct <= 10 }] : []),
        ...(underLoad.length ? [{ what: 'default, one busy process per core: p99 ≤ 100 µs in ≥ 4 of 5 runs', measured: `${held} of ${underLoad.length} runs (${underLoad.map((r) => us(r.p99)).join(', ')} µs)`, met: held >= Math.ceil((underLoad.length * 4) / 5) }] : []),
      ];

mkdirSync(outDir, { recursive: true });
const info = { ...machineInfo(), date: new Date().toISOString(), schedule: schedule.description, runs };
writeFileSync(join(outDir, `${outName}.json`), JSON.stringify({ info, machine, policies: POLICIES, rows, summary, targets }, null, 2) + '\n');

const floor = (load: Load) => {
  const m = machine[load];
  return m ? `sleep 750 µs wakes p99 ${us(m.sleep750us?.p99 ?? NaN)} µs late; a spinning thread stalls > 50 µs ${m.spinStallsOver50us?.count ?? '–'} times (max ${us(m.spinStallsOver50us?.max ?? NaN)} µs)` : '';
};
const md = [
  `# Wait policies: CPU against lateness (${schedule.description})`,
  '',
  `${info.date}, ${info.cpu}, ${info.cores} cores, kernel ${info.kernel}. \`npm run bench:wait${argv.length ? ` -- ${argv.join(' ')}` : ''}\`.`,
  'Lateness: kernel receive timestamp − due time, µs; CPU: the replaying process, % of one core. Medians of the runs; every run in the last two columns.',
  '',
  ...loads.map((load) => `- Machine floor, load ${load}: ${floor(load)}.`),
  `- Runs whose scheduler thread waited in the real-time class (SCHED_FIFO 1): ${policies.map((p) => `${p} ${rows.filter((r) => r.policy === p && r.realtime).length} of ${rows.filter((r) => r.policy === p).length}`).join(', ')}.`,
  '',
  markdownTable(
    ['load', 'policy', 'p50 µs', 'p99 µs', 'CPU %', 'p99 of each run µs', 'CPU of each run %'],
    summary.map((s) => [s.load, s.policy, s.p50, s.p99, s.cpuPct, s.p99s.map(us).join(', '), s.cpus.map((c) => c.toFixed(1)).join(', ')]),
  ),
  '',
  ...Object.entries(POLICIES).filter(([p]) => policies.includes(p)).map(([p, { note }]) => `- **${p}**: ${note}.`),
  '',
  '## Targets',
  '',
  markdownTable(['target', 'measured', 'met'], targets.map((t) => [t.what, t.measured, t.met ? 'yes' : 'no'])),
  '',
  `Each point of \`${outName}-curve.svg\` is one run: CPU against p99.`,
  '',
].join('\n');
writeFileSync(join(outDir, `${outName}.md`), md);
writeFileSync(
  join(outDir, `${outName}-curve.svg`),
  scatterSvg({
    title: `CPU against p99 lateness, ${schedule.description} (each point one run)`,
    xLabel: 'CPU of the replaying process, % of a core',
    yLabel: 'p99 lateness, µs (log scale)',
    logY: true,
    series: summary.map((s) => ({ name: `${s.policy}, load ${s.load}`, points: s.cpus.map((c, i) => [c, s.p99s[i]!] as [number, number]) })),
  }),
);
for (const t of targets) log(`target: ${t.what}: ${t.measured}: ${t.met ? 'met' : 'NOT met'}`);
log(`\nwrote ${join(outDir, `${outName}.md`)}, ${outName}.json, ${outName}-curve.svg`);
rmSync(work, { recursive: true, force: true });
