import test from 'ava';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { dataset, root } from './helpers.js';

const cli = join(root, 'src', 'cli.ts');

function run(...args: string[]) {
  return spawnSync(process.execPath, ['--import=tsx', cli, ...args], { encoding: 'utf8', cwd: root, timeout: 60_000 });
}

test('play prints one line per message with time, topic, type and payload', (t) => {
  const r = run('play', dataset, '--speed', '10');
  t.is(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n').filter(Boolean);
  t.is(lines.length, 20);
  t.regex(lines[0]!, /^\s+0\.000000\s+""\s+UnitTestMessageA\s+\{"timestamp":0,"data":0,"name":"UnitTestMessageA"\}$/);
  t.regex(lines[19]!, /^\s+1\.000000\s+""\s+UnitTestMessageB\s+\{.*"name":"UnitTestMessageB"\}$/);
  t.regex(r.stderr, /20 messages in 0\.\d+ s; handover lateness p50 [\d.]+ µs/);
});

test('play honours --min-time / --max-time and --include-raw', (t) => {
  const r = run('play', dataset, '--speed', 'inf', '--include-raw', '--min-time', '0.5');
  t.is(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n').filter(Boolean);
  t.is(lines.length, 6 + 10);
  t.true(lines.some((l) => /\bNone\b/.test(l)));
});

test('info gives duration, span and counts per type and topic', (t) => {
  const r = run('info', dataset);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /messages:\s+20\n/);
  t.regex(r.stdout, /time span: 0\.000000 s \.\. 1\.000000 s/);
  t.regex(r.stdout, /duration:\s+1\.000000 s/);
  t.regex(r.stdout, /10\s+UnitTestMessageA\s+""/);
  t.regex(r.stdout, /10\s+UnitTestMessageB\s+""/);
  t.regex(r.stdout, /created:\s+1970-01-01 00:00:00/);
});

test('bad input: clear message and a non-zero exit, no stack trace', (t) => {
  const missing = run('play', join(dataset, 'nope.log'));
  t.is(missing.status, 1);
  t.regex(missing.stderr, /^netreplay: .*nope\.log.*no such file/);
  t.notRegex(missing.stderr, /\n\s+at /);
  const speed = run('play', dataset, '--speed=-2');
  t.is(speed.status, 2);
  t.regex(speed.stderr, /--speed must be a number > 0/);
  const unknown = run('frobnicate');
  t.is(unknown.status, 2);
  t.regex(unknown.stderr, /unknown command 'frobnicate'/);
  const badFlag = run('play', dataset, '--sped', '2');
  t.is(badFlag.status, 2);
  t.regex(badFlag.stderr, /Unknown option '--sped'/);
  t.regex(run('--help').stdout, /netreplay play <path>/);
});
