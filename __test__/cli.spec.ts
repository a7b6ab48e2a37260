// The command line, run as a real process: every flag accepted, taking
// effect, and refused with exit 2 when its value is bad.
import test from 'ava';
import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dataset, mayBeRealtime, root, tempDir, writeLog } from './helpers.js';

const cli = join(root, 'src', 'cli.ts');
const fileA = join(dataset, 'UnitTestMessageA.log');
const fileB = join(dataset, 'UnitTestMessageB.log');

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; `onOutput` (at its first output) may signal it. */
function run(
  args: string[],
  options: {
    env?: NodeJS.ProcessEnv;
    onStart?: (pid: number) => void;
    onOutput?: (pid: number) => void;
    onStderr?: (text: string) => void;
  } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import=tsx', cli, ...args], {
      cwd: root,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (!stdout) options.onOutput?.(child.pid!);
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      options.onStderr?.(d);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('spawn', () => options.onStart?.(child.pid!));
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

const lines = (r: Run) => r.stdout.split('\n').filter(Boolean);
const json = (r: Run) => lines(r).map((l) => JSON.parse(l) as Record<string, unknown>);
/** Wall-clock seconds of the replay, from the summary line. */
const elapsed = (r: Run) => Number(/(\d+) messages in ([\d.]+) s/.exec(r.stderr)?.[2]);

/** A log with three topics: /a and /b of type T, /s of type S. */
function topicLog(dir: string): string[] {
  const t = writeLog(join(dir, 'T.log'), [
    { t: 0, topic: '/a', payload: { i: 0 } },
    { t: 0.1, topic: '/b', payload: { i: 1 } },
    { t: 0.2, topic: '/a', payload: { i: 2 } },
    { t: 0.3, topic: '/b', payload: { i: 3 } },
  ], 'T');
  const s = writeLog(join(dir, 'S.log'), [
    { t: 0.05, topic: '/s', payload: { i: 10 } },
    { t: 0.25, topic: '/s', payload: { i: 11 } },
  ], 'S');
  return [t, s];
}

async function receiver(t: { teardown(fn: () => void): void }): Promise<{ url: string; datagrams: Buffer[]; socket: Socket }> {
  const socket = createSocket('udp4');
  const datagrams: Buffer[] = [];
  socket.on('message', (d) => datagrams.push(d));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  t.teardown(() => socket.close());
  return { url: `udp://127.0.0.1:${socket.address().port}`, datagrams, socket };
}

const settle = () => new Promise((r) => setTimeout(r, 200));

test('play prints one line per message with time, topic, type and payload, and a summary', async (t) => {
  const r = await run(['play', dataset, '--speed', '10']);
  t.is(r.status, 0, r.stderr);
  const out = lines(r);
  t.is(out.length, 20);
  t.regex(out[0]!, /^\s+0\.000000\s+""\s+UnitTestMessageA\s+\{"timestamp":0,"data":0,"name":"UnitTestMessageA"\}$/);
  t.regex(out[19]!, /^\s+1\.000000\s+""\s+UnitTestMessageB\s+\{.*"name":"UnitTestMessageB"\}$/);
  t.regex(r.stderr, /20 messages in 0\.\d+ s \([\d.]+ messages\/s, [\d.]+ MB\/s\); handover lateness p50 [\d.]+ (µs|ms)/);
  t.notRegex(r.stderr, /\x1b\[/, 'no status line when stderr is not a terminal');
});

test('--json prints one JSON object per message: time, topic, type, payload, lateness, pass, backfill', async (t) => {
  const r = await run(['play', dataset, '--speed', '20', '--json']);
  t.is(r.status, 0, r.stderr);
  const messages = json(r);
  t.is(messages.length, 20);
  t.deepEqual(Object.keys(messages[0]!), ['time', 'topic', 'type', 'payload', 'lateness', 'pass', 'backfill']);
  t.deepEqual(messages[0]!.payload, { timestamp: 0, data: 0, name: 'UnitTestMessageA' });
  t.true(messages.every((m) => typeof m.lateness === 'number' && m.pass === 0 && m.backfill === false));
  const times = messages.map((m) => m.time as number);
  t.deepEqual(times, [...times].sort((a, b) => a - b));
});

test('several paths are merged in time order', async (t) => {
  const r = await run(['play', fileB, fileA, '--speed', 'inf', '--json']);
  t.is(r.status, 0, r.stderr);
  const messages = json(r);
  t.is(messages.length, 20);
  t.deepEqual(messages.slice(0, 10).map((m) => m.type), Array(10).fill('UnitTestMessageA'));
  const times = messages.map((m) => m.time as number);
  t.deepEqual(times, [...times].sort((a, b) => a - b));
  // info reads them as one too.
  const info = await run(['info', fileA, fileB]);
  t.is(info.status, 0, info.stderr);
  t.regex(info.stdout, /messages:\s+20\n/);
});

test('window flags: --start-offset, --duration, --until, --limit, --min-time, --max-time, --include-raw', async (t) => {
  const count = async (...args: string[]) => {
    const r = await run(['play', dataset, '--speed', 'inf', ...args]);
    t.is(r.status, 0, r.stderr);
    return lines(r).length;
  };
  t.is(await count('--start-offset', '0.5'), 6);
  t.is(await count('--duration', '0.05'), 6);
  t.is(await count('--until', '0.2'), 12);
  t.is(await count('--limit', '3'), 3);
  t.is(await count('--min-time', '0.5'), 6);
  t.is(await count('--max-time', '0.05'), 6);
  t.is(await count('--include-raw', '--min-time', '0.5'), 6 + 10);
});

test('loop flags: --loop N, --loop for ever, --loop 0, --continuous-time with --loop-delay', async (t) => {
  const two = await run(['play', dataset, '--speed', 'inf', '--loop', '2', '--json']);
  t.is(two.status, 0, two.stderr);
  const passes = json(two).map((m) => m.pass);
  t.is(passes.length, 40);
  t.deepEqual([passes[19], passes[20]], [0, 1]);
  for (const loop of [['--loop'], ['--loop', '0']]) {
    const r = await run(['play', dataset, '--speed', 'inf', ...loop, '--limit', '45']);
    t.is(r.status, 0, r.stderr);
    t.is(lines(r).length, 45);
  }
  const continuous = await run(['play', dataset, '--speed', 'inf', '--loop', '2', '--continuous-time', '--loop-delay', '0.5', '--json']);
  t.is(continuous.status, 0, continuous.stderr);
  // Pass 1 starts one mean gap (1 s / 19) and the loop delay after pass 0's last message.
  t.true(Math.abs((json(continuous)[20]!.time as number) - (1 + 1 / 19 + 0.5)) < 1e-6);
});

test('timing flags take effect: --speed/-r/--rate, --delay, --max-gap, --pps, --mbps, --start-at', async (t) => {
  for (const flag of ['--speed', '-r', '--rate', '-s']) {
    const r = await run(['play', dataset, flag, '4', '--quiet']);
    t.is(r.status, 0, r.stderr);
    t.true(elapsed(r) >= 0.2 && elapsed(r) < 0.9, `${flag} 4: ${elapsed(r)} s`);
  }
  const delay = await run(['play', dataset, '--speed', 'inf', '--delay', '0.4', '--quiet']);
  t.true(elapsed(delay) >= 0.38, `--delay: ${elapsed(delay)} s`);
  const maxGap = await run(['play', dataset, '--max-gap', '0.002', '--quiet']);
  t.true(elapsed(maxGap) < 0.6, `--max-gap: ${elapsed(maxGap)} s`);
  // 19 gaps of 20 ms.
  const pps = await run(['play', dataset, '--pps', '50', '--quiet']);
  t.true(elapsed(pps) >= 0.3 && elapsed(pps) < 0.9, `--pps: ${elapsed(pps)} s`);
  // 19 payloads of 56 bytes at 20 kbit/s: 0.43 s.
  const mbps = await run(['play', dataset, '--mbps', '0.02', '--quiet']);
  t.true(elapsed(mbps) >= 0.3 && elapsed(mbps) < 0.9, `--mbps: ${elapsed(mbps)} s`);
  const soon = () => new Date(Date.now() + 1500);
  for (const at of [() => '+1.2', () => soon().toISOString(), () => (BigInt(soon().getTime()) * 1_000_000n).toString()]) {
    const r = await run(['play', dataset, '--speed', '10', '--start-at', at(), '--quiet']);
    t.is(r.status, 0, r.stderr);
    // The wait is counted in the replay's time (process start-up, at most a
    // second on a loaded machine, is not).
    t.true(elapsed(r) >= 0.3, `--start-at ${at()}: ${elapsed(r)} s`);
  }
});

test('selection flags: --topics, --exclude-topics, --regex/-e, --exclude-regex/-x, --types, --exclude-types, --remap, --backfill', async (t) => {
  const logs = topicLog(tempDir(t));
  const topics = async (...args: string[]) => {
    const r = await run(['play', ...logs, '--speed', 'inf', '--json', ...args]);
    t.is(r.status, 0, r.stderr);
    return json(r).map((m) => `${m.topic}${m.backfill ? '*' : ''}`);
  };
  t.deepEqual(await topics('--topics', '/a', '/s'), ['/a', '/s', '/a', '/s']);
  t.deepEqual(await topics('--topics=/b'), ['/b', '/b']);
  t.deepEqual(await topics('--exclude-topics', '/a', '/b'), ['/s', '/s']);
  t.deepEqual(await topics('-e', '^/[ab]$'), ['/a', '/b', '/a', '/b']);
  t.deepEqual(await topics('--regex', 's', '--topics', '/b'), ['/s', '/b', '/s', '/b']);
  t.deepEqual(await topics('-x', 'a|s'), ['/b', '/b']);
  t.deepEqual(await topics('--exclude-regex', '^/b'), ['/a', '/s', '/a', '/s']);
  t.deepEqual(await topics('--types', 'S'), ['/s', '/s']);
  t.deepEqual(await topics('--exclude-types', 'S'), ['/a', '/b', '/a', '/b']);
  t.deepEqual(await topics('--remap', '/a:=/z', '/s:=/t', '--types', 'T'), ['/z', '/b', '/z', '/b']);
  // The last of each (type, topic) before 0.22 s first, in time order, marked.
  t.deepEqual(await topics('--start-offset', '0.22', '--backfill'), ['/s*', '/b*', '/a*', '/s', '/b']);
});

test('output flags: --quiet prints no messages, --no-print sends without delivering to JS', async (t) => {
  const quiet = await run(['play', dataset, '--speed', 'inf', '-q']);
  t.is(quiet.status, 0, quiet.stderr);
  t.is(quiet.stdout, '');
  t.regex(quiet.stderr, /20 messages in/);
  const rx = await receiver(t);
  const noPrint = await run(['play', dataset, '--speed', 'inf', '--no-print', '--udp', rx.url]);
  t.is(noPrint.status, 0, noPrint.stderr);
  t.is(noPrint.stdout, '');
  await settle();
  t.is(rx.datagrams.length, 20);
  t.regex(noPrint.stderr, /udp: 20\/20 messages sent/);
});

test('UDP flags: --udp, --route, --hop-limit, --mtu, --interface, --no-multicast-loop, --no-loop (deprecated), --clock/--clock-to', async (t) => {
  const all = await receiver(t);
  const onlyB = await receiver(t);
  const r = await run([
    'play', dataset, '--speed', 'inf', '--quiet', '--udp', all.url, '--route', `UnitTestMessageB=${onlyB.url}`,
    '--hop-limit', '2', '--mtu', '1000', '--interface', '127.0.0.1', '--no-multicast-loop',
  ]);
  t.is(r.status, 0, r.stderr);
  await settle();
  t.is(all.datagrams.length, 10);
  t.is(onlyB.datagrams.length, 10);
  t.true(onlyB.datagrams.every((d) => d.includes('UnitTestMessageB')));
  const old = await run(['play', dataset, '--speed', 'inf', '--quiet', '--udp', all.url, '--no-loop']);
  t.is(old.status, 0, old.stderr);
  t.regex(old.stderr, /--no-loop is deprecated.*--no-multicast-loop/);
  const ticks = await receiver(t);
  const clock = await run(['play', dataset, '--speed', '2', '--quiet', '--clock', '50', '--clock-to', ticks.url]);
  t.is(clock.status, 0, clock.stderr);
  await settle();
  // 0.5 s at 50 Hz: about 25 ticks.
  t.true(ticks.datagrams.length >= 10, `${ticks.datagrams.length} ticks`);
  t.true(ticks.datagrams.every((d) => d.includes('/clock')));
});

test('--fail-on-error: the first failed send ends the replay with exit 1; without it failures are counted', async (t) => {
  // Broadcasting without SO_BROADCAST is refused by the kernel (EACCES).
  const counted = await run(['play', dataset, '--speed', 'inf', '--quiet', '--udp', 'udp://255.255.255.255:9']);
  t.is(counted.status, 0, counted.stderr);
  t.regex(counted.stderr, /failures: other 20/);
  const failed = await run(['play', dataset, '--speed', 'inf', '--quiet', '--udp', 'udp://255.255.255.255:9', '--fail-on-error']);
  t.is(failed.status, 1, failed.stderr);
  t.regex(failed.stderr, /cannot send.*Permission denied/);
});

test('--realtime on plays in the real-time class where permitted, and fails with exit 1 and the reason where not', async (t) => {
  const r = await run(['play', dataset, '--quiet', '--speed', '4', '--realtime', 'on']);
  if (process.platform === 'linux' && mayBeRealtime()) {
    t.is(r.status, 0, r.stderr);
  } else {
    t.is(r.status, 1, r.stderr);
    t.regex(r.stderr, /realtime.*CAP_SYS_NICE.*let --realtime be 'auto'/);
  }
  const off = await run(['play', dataset, '--quiet', '--speed', '4', '--realtime', 'off']);
  t.is(off.status, 0, off.stderr);
});

test('bad values exit 2 with a message naming the flag and the value', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--speed=-2'], /--speed must be a number > 0 or 'inf', got '-2'/],
    [['-r', 'fast'], /--rate must be a number > 0 or 'inf', got 'fast'/],
    [['--speed', '2', '--rate', '3'], /--speed or --rate, not both/],
    [['--loop=x'], /--loop must be a whole number >= 0, got 'x'/],
    [['--loop-delay', '-1'], /--loop-delay must be a number of seconds >= 0, got '-1'/],
    [['--start-offset', 'soon'], /--start-offset must be a number of seconds >= 0, got 'soon'/],
    [['--duration', '-3'], /--duration must be a number of seconds >= 0, got '-3'/],
    [['--until', 'x'], /--until must be a number of seconds, got 'x'/],
    [['--limit', '0'], /--limit must be a whole number >= 1, got '0'/],
    [['--delay', 'x'], /--delay must be a number of seconds >= 0, got 'x'/],
    [['--max-gap', '0'], /--max-gap must be a number of seconds > 0, got '0'/],
    [['--pps', '0'], /--pps must be a number of messages per second > 0, got '0'/],
    [['--spin-margin', '-1'], /--spin-margin must be a number of seconds >= 0, got '-1'/],
    [['--spin-margin', '0.5'], /invalid --spin-margin: must be from 0 to 0\.1 s, got 0\.5 s/],
    [['--busy-wait', 'x'], /--busy-wait must be a number of seconds >= 0, got 'x'/],
    [['--realtime', 'yes'], /--realtime must be 'auto', 'on' or 'off', got 'yes'/],
    [['--mbps', 'x'], /--mbps must be a number of megabits per second > 0, got 'x'/],
    [['--pps', '5', '--mbps', '1'], /--pps or --mbps, not both/],
    [['--pps', '5', '--speed', '2'], /invalid --speed: conflicts with --pps\/--mbps/],
    [['--pps', '5', '--max-gap', '1'], /invalid --max-gap: conflicts with --pps\/--mbps/],
    [['--start-at', 'tomorrow'], /--start-at must be an ISO time .*got 'tomorrow'/],
    [['--clock=x', '--udp', 'udp://127.0.0.1:9'], /--clock must be a rate in Hz > 0, got 'x'/],
    [['--clock=0', '--udp', 'udp://127.0.0.1:9'], /--clock must be a rate in Hz > 0, got '0'/],
    [['--clock'], /--clock needs --clock-to or --udp/],
    [['--clock-to', 'udp://127.0.0.1:9'], /--clock-to needs --clock/],
    [['-e', '('], /--regex: bad regular expression '\('/],
    [['-x', '[a'], /--exclude-regex: bad regular expression '\[a'/],
    [['--remap', 'nope'], /--remap must be FROM:=TO, got 'nope'/],
    [['--topics'], /--topics needs at least one TOPIC/],
    [['--route', 'x'], /--route must be <Type\|@topic\|Type@topic>=<url>, got 'x'/],
    [['--hop-limit', '2'], /--hop-limit needs --udp or --route/],
    [['--udp', 'udp://127.0.0.1:9', '--mtu', 'big'], /--mtu must be a whole number >= 0, got 'big'/],
    [['--udp', 'udp://127.0.0.1:9', '--mtu', '10'], /--mtu.*10/],
    [['--udp', 'nope://x'], /nope:\/\/x/],
    [['--no-print'], /--no-print needs --udp, --route/],
    [['--min-time', 'x'], /--min-time must be a number of seconds, got 'x'/],
    [['--min-time', '2', '--max-time', '1'], /--min-time \(2\) is after --max-time \(1\)/],
    [['--on-error', 'ignore'], /--on-error must be 'fail' or 'skip', got 'ignore'/],
    [['--fail-on-error'], /--fail-on-error needs --udp or --route/],
    [['--sped', '2'], /Unknown option '--sped'/],
  ];
  await Promise.all(
    cases.map(async ([args, message]) => {
      const r = await run(['play', dataset, ...args]);
      t.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      t.regex(r.stderr, message, args.join(' '));
      t.notRegex(r.stderr, /\n\s+at /);
    }),
  );
});

test('usage errors: unknown command, no path, a greedy flag that took the path', async (t) => {
  const unknown = await run(['frobnicate']);
  t.is(unknown.status, 2);
  t.regex(unknown.stderr, /unknown command 'frobnicate'/);
  const noPath = await run(['play']);
  t.is(noPath.status, 2);
  t.regex(noPath.stderr, /play needs at least one <path>/);
  const greedy = await run(['play', '--topics', '/a', dataset]);
  t.is(greedy.status, 2);
  t.regex(greedy.stderr, /put the paths first, or write --topics=T/);
  const info = await run(['info', dataset, '--min-time', 'x']);
  t.is(info.status, 2);
  t.regex(info.stderr, /--min-time must be a number of seconds, got 'x'/);
  const record = await run(['record', 'udp://127.0.0.1:0']);
  t.is(record.status, 2);
  t.regex(record.stderr, /record needs -o <dir>/);
});

test('runtime errors exit 1 with the file (and line) named; --on-error skip counts and goes on', async (t) => {
  const missing = await run(['play', join(dataset, 'nope.log')]);
  t.is(missing.status, 1);
  t.regex(missing.stderr, /^netreplay: .*nope\.log.*no such file/);
  t.notRegex(missing.stderr, /\n\s+at /);
  const dir = tempDir(t);
  const bad = join(dir, 'bad.log');
  writeLog(bad, [{ t: 0, payload: 1 }, { t: 0.01, payload: 2 }], 'T');
  writeFileSync(bad, `${'     0.02000    \'\'          zz\n'}`, { flag: 'a' });
  const failed = await run(['play', bad, '--speed', 'inf']);
  t.is(failed.status, 1, failed.stderr);
  t.regex(failed.stderr, /bad\.log:\d+: /);
  t.is(lines(failed).length, 2);
  const skipped = await run(['play', bad, '--speed', 'inf', '--on-error', 'skip']);
  t.is(skipped.status, 0, skipped.stderr);
  t.is(lines(skipped).length, 2);
  const info = await run(['info', bad]);
  t.is(info.status, 1);
  t.regex(info.stderr, /bad\.log:\d+: /);
  const infoSkip = await run(['info', bad, '--on-error', 'skip']);
  t.is(infoSkip.status, 0, infoSkip.stderr);
  t.regex(infoSkip.stdout, /messages:\s+2 \(1 malformed skipped\)/);
});

test('SIGINT exits 130 and SIGTERM 143, after the summary', async (t) => {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    // Once it plays (the handlers are in place).
    const r = await run(['play', dataset, '--loop'], {
      onOutput: (pid) => setTimeout(() => process.kill(pid, signal), 300),
    });
    t.is(r.status, code, r.stderr);
    t.regex(r.stderr, /\d+ messages in/);
  }
});

test("each command's --help lists every flag; the global help lists the commands and exit codes", async (t) => {
  const play = await run(['play', '--help']);
  t.is(play.status, 0);
  const flags = [
    '--loop [N]', '--loop-delay', '--continuous-time', '--start-offset', '--duration', '--until', '--limit',
    '--start-paused', '--delay', '--max-gap', '--pps', '--mbps', '--start-at', '--clock [HZ]', '--clock-to',
    '--spin-margin', '--busy-wait', '--realtime',
    '--topics TOPIC...', '--exclude-topics', '-e, --regex', '-x, --exclude-regex', '--types', '--exclude-types',
    '--remap FROM:=TO...', '--backfill', '-r, --rate', '-s, --speed', '--json', '-q, --quiet', '--no-print',
    '--no-progress', '--no-keys', '--fail-on-error', '--udp', '--route', '--hop-limit', '--interface', '--mtu',
    '--no-multicast-loop', '--no-loop', '--control', '--foxglove [URL]', '--min-time', '--max-time',
    '--include-raw', '--on-error', '-h, --help',
  ];
  for (const flag of flags) t.true(play.stdout.includes(flag), `play --help lacks ${flag}`);
  const text = play.stdout.replace(/\s+/g, ' ');
  t.regex(text, /Exit status: 0 done, 1 runtime error .* 2 usage, 130 Ctrl-C/);
  t.regex(text, /Keys \(stdin a terminal\): space pause\/resume/);
  const info = await run(['info', '-h']);
  for (const flag of ['--min-time', '--max-time', '--include-raw', '--on-error', '--json']) t.true(info.stdout.includes(flag));
  const record = await run(['help', 'record']);
  for (const flag of ['-o, --output DIR', '--max-entries', '--max-time', '--interface']) t.true(record.stdout.includes(flag));
  const global = await run(['--help']);
  t.regex(global.stdout, /netreplay play <path>\.\.\./);
  t.regex(global.stdout, /netreplay info <path>\.\.\./);
  t.regex(global.stdout, /2 usage; 130 interrupted/);
});

test('info gives span, counts, rate, largest gap and bytes per type and topic, honours the time window, and --json', async (t) => {
  const r = await run(['info', dataset]);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /messages:\s+20\n/);
  t.regex(r.stdout, /time span: 0\.000000 s \.\. 1\.000000 s/);
  t.regex(r.stdout, /duration:\s+1\.000000 s/);
  t.regex(r.stdout, /created:\s+1970-01-01 00:00:00/);
  t.regex(r.stdout, /UnitTestMessageA: .*UnitTestMessageA\.log/);
  t.regex(r.stdout, /\s10\s+UnitTestMessageA\s+""\s+0\.000000\s+0\.090000\s+100\.000\s+0\.010000\s+560 B\s+56\.0/);
  t.regex(r.stdout, /\s10\s+UnitTestMessageB\s+""\s+0\.100000\s+1\.000000\s+10\.000\s+0\.100000\s+560 B\s+56\.0/);
  const windowed = await run(['info', dataset, '--min-time', '0.5', '--json']);
  t.is(windowed.status, 0, windowed.stderr);
  const s = JSON.parse(windowed.stdout) as { count: number; firstTime: number; topics: { type: string; count: number }[] };
  t.is(s.count, 6);
  t.is(s.firstTime, 0.5);
  t.deepEqual(s.topics.map((x) => [x.type, x.count]), [['UnitTestMessageB', 6]]);
  const logs = topicLog(tempDir(t));
  const topics = JSON.parse((await run(['info', ...logs, '--json'])).stdout) as { topics: { topic: string; count: number; largestGap: number }[] };
  t.deepEqual(topics.topics.map((x) => [x.topic, x.count, x.largestGap]), [['/a', 2, 0.2], ['/s', 2, 0.2], ['/b', 2, 0.2]]);
});

test('--control serves the JSON control API: pause, seek, step, speed and status reflect in what is played', async (t) => {
  let stderr = '';
  const child = run(['play', dataset, '--loop', '--json', '--control', '127.0.0.1:0'], { onStderr: (d) => (stderr += d) });
  let url: string | undefined;
  // The address is printed on stderr once the server listens.
  for (const deadline = Date.now() + 30_000; !url && Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 50));
    url = /control API at (http:\/\/[\d.]+:\d+)/.exec(stderr)?.[1];
  }
  t.truthy(url, stderr);
  const call = async (path: string, body?: unknown) => {
    const response = await fetch(`${url}${path}`, {
      method: path === '/status' ? 'GET' : 'POST',
      ...(body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    const answer = (await response.json()) as Record<string, unknown> & { status?: Record<string, unknown> };
    return path === '/status' ? answer : answer.status!;
  };
  t.is((await call('/speed', { speed: 2 })).speed, 2);
  t.is((await call('/pause')).state, 'paused');
  const pausedAt = (await call('/status')).delivered;
  await new Promise((r) => setTimeout(r, 400));
  t.is((await call('/status')).delivered, pausedAt, 'nothing delivered while paused');
  await call('/seek', { time: 0.95 });
  await call('/step', { n: 1 });
  await new Promise((r) => setTimeout(r, 200));
  await call('/stop');
  const r = await child;
  t.is(r.status, 0, r.stderr);
  // The step after the seek delivered the first message at or after 0.95 s: the last printed.
  t.is(json(r).at(-1)!.time, 1);
});

test('--foxglove serves the replay to the protocol\'s own client; bad addresses exit 2', async (t) => {
  const { createRequire } = await import('node:module');
  const { WebSocket } = await import('ws');
  const { FoxgloveClient } = createRequire(import.meta.url)('@foxglove/ws-protocol') as typeof import('@foxglove/ws-protocol');
  let stderr = '';
  let pid = 0;
  const child = run(['play', dataset, '--loop', '--quiet', '--foxglove', '127.0.0.1:0'], {
    onStderr: (d) => (stderr += d),
    onStart: (p) => (pid = p),
  });
  let url: string | undefined;
  for (const deadline = Date.now() + 30_000; !url && Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 50));
    url = /Foxglove WebSocket server at (ws:\/\/[\d.]+:\d+)/.exec(stderr)?.[1];
  }
  t.truthy(url, stderr);
  const ws = new WebSocket(url!, [FoxgloveClient.SUPPORTED_SUBPROTOCOL]);
  const client = new FoxgloveClient({ ws: ws as unknown as import('@foxglove/ws-protocol').IWebSocket });
  const topics = new Map<number, string>();
  const received: string[] = [];
  client.on('advertise', (channels) => {
    for (const c of channels) topics.set(client.subscribe(c.id), c.topic);
  });
  client.on('message', ({ subscriptionId, data }) => {
    received.push(`${topics.get(subscriptionId)} ${Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')}`);
  });
  for (const deadline = Date.now() + 20_000; received.length < 5 && Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 50));
  }
  client.close();
  t.true(received.length >= 5, `${received.length} messages`);
  t.true(received.some((m) => m.startsWith('/UnitTestMessageA {') && m.includes('"name":"UnitTestMessageA"')), received[0]);
  process.kill(pid, 'SIGINT');
  const r = await child;
  t.is(r.status, 130, r.stderr);
  for (const [flag, value] of [['--control', 'http://127.0.0.1:99999'], ['--foxglove', 'ws://127.0.0.1:70000']]) {
    const bad = await run(['play', dataset, flag!, value!]);
    t.is(bad.status, 2, bad.stderr);
    t.regex(bad.stderr, new RegExp(`${flag}.*99999|${flag}.*70000|port`));
  }
  const noJs = await run(['play', dataset, '--no-print', '--udp', 'udp://127.0.0.1:9', '--foxglove']);
  t.is(noJs.status, 2);
  t.regex(noJs.stderr, /--foxglove needs messages delivered to JS/);
});
