// The CLI on captures: play prints and sends a capture's UDP datagrams
// (raw, to their original destinations, to one address, or mapped), its
// filter flags, and info's capture summary. The captures are written by
// the bench's pcap writer (bench/lib/pcap.ts: Ethernet/IPv4/UDP, µs).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writePcap } from '../bench/lib/pcap.js';
import { root, sleep, tempDir } from './helpers.js';

const cli = join(root, 'src', 'cli.ts');

function run(...args: string[]) {
  return spawnSync(process.execPath, ['--import=tsx', cli, ...args], { encoding: 'utf8', cwd: root, timeout: 60_000 });
}

async function receiver(): Promise<{ port: number; got: Buffer[]; close(): void }> {
  const socket = dgram.createSocket('udp4');
  const got: Buffer[] = [];
  socket.on('message', (m) => got.push(m));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, got, close: () => socket.close() };
}

/** Six datagrams 10 ms apart: three to port `a`, three to port `b`, the last three from 10.0.0.7. */
function capture(dir: string, a: number, b: number): string {
  const path = join(dir, 'cap.pcap');
  const first = (i: number) => ({ timeNs: i * 10_000_000, payload: Buffer.from(`d${i}\x00\xff`, 'latin1') });
  // The writer takes one destination and source per file: one file per packet, then joined.
  const packets = [0, 1, 2, 3, 4, 5].map((i) => ({ ...first(i), port: i % 2 === 0 ? a : b, src: i >= 3 ? '10.0.0.7' : '127.0.0.1' }));
  const files = packets.map((p, i) => {
    const f = join(dir, `p${i}.pcap`);
    writePcap(f, [{ timeNs: p.timeNs, payload: p.payload }], { dstPort: p.port, srcIp: p.src });
    return f;
  });
  // One header, then every file's records.
  const parts = files.map((f, i) => (i === 0 ? readFileSync(f) : readFileSync(f).subarray(24)));
  writeFileSync(path, Buffer.concat(parts));
  return path;
}

test('play prints a capture: topic = original destination, type None, payload as hex', (t) => {
  const path = capture(tempDir(t), 41001, 41002);
  const r = run('play', path, '--speed', 'inf');
  t.is(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n').filter(Boolean);
  t.is(lines.length, 6);
  t.regex(lines[0]!, /^\s+0\.000000\s+"127\.0\.0\.1:41001"\s+None\s+"643000ff"$/);
  t.regex(lines[1]!, /^\s+0\.010000\s+"127\.0\.0\.1:41002"\s+None\s+"643100ff"$/);
  const json = run('play', path, '--speed', 'inf', '--json', '--dst-port', '41002');
  t.is(json.status, 0, json.stderr);
  const objects = json.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { topic: string; payload: string; timeNs: string; encoding: string });
  t.deepEqual(objects.map((o) => o.payload), ['643100ff', '643300ff', '643500ff']);
  t.true(objects.every((o) => /^\d{19}$/.test(o.timeNs) && o.encoding === 'bytes'), 'capture times as epoch ns, payloads as bytes');
});

test('play --filter, --dst-port, --src keep what they say', (t) => {
  const path = capture(tempDir(t), 41011, 41012);
  const count = (...flags: string[]) => {
    const r = run('play', path, '--speed', 'inf', ...flags);
    t.is(r.status, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean).length;
  };
  t.is(count('--filter', 'udp dst port 41011'), 3);
  t.is(count('--filter', 'src host 10.0.0.7 and not dst port 41011'), 2);
  t.is(count('--dst-port', '41011', '--dst-port', '41012'), 6);
  t.is(count('--src', '10.0.0.7'), 3);
  t.is(count('--src', '127.0.0.1', '--dst-port', '41012'), 1);
});

test('play sends the raw datagrams: --to-original, --to, --map', async (t) => {
  const [a, b, to, mapped] = [await receiver(), await receiver(), await receiver(), await receiver()];
  t.teardown(() => [a, b, to, mapped].forEach((r) => r.close()));
  const path = capture(tempDir(t), a.port, b.port);
  const hex = (r: { got: Buffer[] }) => r.got.map((m) => m.toString('hex'));
  let r = run('play', path, '--speed', 'inf', '--to-original', '--quiet');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /udp: 6\/6 messages sent as 6 datagrams/);
  await sleep(100);
  t.deepEqual(hex(a), ['643000ff', '643200ff', '643400ff']);
  t.deepEqual(hex(b), ['643100ff', '643300ff', '643500ff']);
  r = run('play', path, '--speed', 'inf', '--no-print', '--to', `udp://127.0.0.1:${to.port}`, '--map', `*:${b.port}=udp://127.0.0.1:${mapped.port}`);
  t.is(r.status, 0, r.stderr);
  await sleep(100);
  t.deepEqual(hex(to), ['643000ff', '643200ff', '643400ff']);
  t.deepEqual(hex(mapped), ['643100ff', '643300ff', '643500ff']);
  r = run('play', path, '--speed', 'inf', '--quiet', '--map', `127.0.0.1:${a.port}=udp://127.0.0.1:${mapped.port}`);
  t.is(r.status, 0, r.stderr);
  await sleep(100);
  t.is(mapped.got.length, 6, 'the exact address mapped');
  t.is(b.got.length, 6, 'the rest to their original destinations');
});

test('play: bad capture flags are usage errors naming the flag', (t) => {
  const path = capture(tempDir(t), 41021, 41022);
  let r = run('play', path, '--filter', 'udp dst prot 1');
  t.is(r.status, 2);
  t.regex(r.stderr, /--filter.*'prot' at position 8/);
  r = run('play', path, '--dst-port', '70000');
  t.is(r.status, 2);
  t.regex(r.stderr, /--dst-port must be a port/);
  r = run('play', path, '--to', 'udp://127.0.0.1:9', '--udp', 'udp://127.0.0.1:9');
  t.is(r.status, 2);
  t.regex(r.stderr, /give one kind/);
  r = run('play', path, '--map', 'nonsense');
  t.is(r.status, 2);
  t.regex(r.stderr, /--map must be/);
  r = run('play', join(root, 'fixtures', 'mcl', 'dataset'), '--dst-port', '1');
  t.is(r.status, 2);
  t.regex(r.stderr, /applies to capture paths/);
});

test('info on a capture: frames, datagrams, skips, destinations, start time', (t) => {
  const path = capture(tempDir(t), 41031, 41032);
  const r = run('info', path);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /messages:\s+6/);
  t.regex(r.stdout, /capture:\s+.*cap\.pcap \(pcap\): 6 frames, 6 UDP datagrams/);
  t.regex(r.stdout, /destinations: 127\.0\.0\.1:41031, 127\.0\.0\.1:41032/);
  t.regex(r.stdout, /started: 2023-11-14T22:13:20\.000Z \(1700000000000000000 ns since the epoch\)/);
  const j = run('info', path, '--json', '--filter', 'dst port 41031');
  t.is(j.status, 0, j.stderr);
  const summary = JSON.parse(j.stdout) as { count: number; captures: { baseNs: string; counts: { filtered: number } }[] };
  t.is(summary.count, 3);
  t.is(summary.captures[0]!.counts.filtered, 3);
  t.is(summary.captures[0]!.baseNs, '1700000000000000000');
});
