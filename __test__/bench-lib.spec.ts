import { execFileSync } from 'node:child_process';
import test from 'ava';
import { writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { distribution, latenessUs, percentile, timingStats } from '../bench/lib/stats.js';
import { barSvg, cdfSvg, escapeXml, formatNumber, markdownTable } from '../bench/lib/report.js';
import { ipv4Checksum, PCAP_EPOCH_S, readPcap, writePcap, MAX_UDP_PAYLOAD } from '../bench/lib/pcap.js';
import { parseChildCpuTicks, parseTcpreplayOutput, tcpreplayVersion } from '../bench/lib/tcpreplay.js';
import { onCpu, senderReceiverCpus } from '../bench/lib/cpu.js';
import { tempDir } from './helpers.js';

// --- stats -----------------------------------------------------------------

/** 1000 records every 1 ms; record i arrives i µs after its deadline. */
function rampInput() {
  const origin = 5e12;
  const scheduleNs = Float64Array.from({ length: 1000 }, (_, i) => i * 1e6);
  const arrivalNs = Float64Array.from(scheduleNs, (s, i) => origin + s + i * 1000);
  return { scheduleNs, arrivalNs, originNs: origin };
}

test('timingStats: lateness ramp 0…999 µs', (t) => {
  const s = timingStats(rampInput());
  t.is(s.count, 1000);
  t.is(s.received, 1000);
  t.is(s.lost, 0);
  t.deepEqual(s.latenessUs, { min: 0, mean: 499.5, p50: 499, p90: 899, p99: 989, p999: 998, max: 999 });
  t.is(s.startOffsetUs, 49.5); // mean of 0..99 (default window ceil(1000/10) = 100)
  t.is(s.endOffsetUs, 949.5); // mean of 900..999
  t.is(s.driftUs, 900);
  t.deepEqual(s.interArrivalErrorUs, { min: 1, mean: 1, p50: 1, p90: 1, p99: 1, p999: 1, max: 1 });
});

test('timingStats: explicit window, and large absolute times keep sub-µs precision', (t) => {
  const origin = 987_654_321_012_345; // ~1e15 ns
  const scheduleNs = [0, 1000, 2000, 3000];
  const arrivalNs = [origin + 250, origin + 1000 + 500, origin + 2000 + 750, origin + 3000 + 1250];
  const s = timingStats({ scheduleNs, arrivalNs, originNs: origin, window: 2 });
  t.is(s.latenessUs.min, 0.25);
  t.is(s.latenessUs.max, 1.25);
  t.is(s.startOffsetUs, (0.25 + 0.5) / 2);
  t.is(s.endOffsetUs, (0.75 + 1.25) / 2);
  t.deepEqual(latenessUs({ scheduleNs, arrivalNs, originNs: origin }), Float64Array.of(0.25, 0.5, 0.75, 1.25));
});

test('timingStats: a burst with lost records', (t) => {
  const origin = 1e12;
  // Two bursts of 4 at t = 0 and t = 1 ms; records 2 and 5 are lost.
  const scheduleNs = [0, 0, 0, 0, 1e6, 1e6, 1e6, 1e6];
  const late = [10, 20, NaN, 40, 5, NaN, 15, 25]; // µs
  const arrivalNs = scheduleNs.map((s, i) => origin + s + late[i]! * 1000);
  const s = timingStats({ scheduleNs, arrivalNs, originNs: origin });
  t.is(s.count, 8);
  t.is(s.received, 6);
  t.is(s.lost, 2);
  t.is(s.latenessUs.min, 5);
  t.is(s.latenessUs.max, 40);
  t.is(s.latenessUs.mean, (10 + 20 + 40 + 5 + 15 + 25) / 6);
  t.is(s.latenessUs.p50, 15); // sorted 5 10 15 20 25 40, rank ceil(3) = 3rd
  // Pairs with both received: (0,1) |10| , (3,4) |5−40| = 35, (6,7) |10|.
  t.deepEqual(s.interArrivalErrorUs, { min: 10, mean: 55 / 3, p50: 10, p90: 35, p99: 35, p999: 35, max: 35 });
  // Default window: ceil(6/10) = 1 received record.
  t.is(s.startOffsetUs, 10);
  t.is(s.endOffsetUs, 25);
  t.is(s.driftUs, 15);
});

test('timingStats: empty and all-lost inputs give NaNs, not exceptions', (t) => {
  const empty = timingStats({ scheduleNs: [], arrivalNs: [], originNs: 0 });
  t.is(empty.count, 0);
  t.is(empty.received, 0);
  t.is(empty.lost, 0);
  t.true(Number.isNaN(empty.latenessUs.p50));
  t.true(Number.isNaN(empty.latenessUs.mean));
  t.true(Number.isNaN(empty.startOffsetUs));
  t.true(Number.isNaN(empty.driftUs));
  t.true(Number.isNaN(empty.interArrivalErrorUs.max));

  const lost = timingStats({ scheduleNs: [0, 1, 2], arrivalNs: [NaN, NaN, NaN], originNs: 0 });
  t.is(lost.received, 0);
  t.is(lost.lost, 3);
  t.true(Number.isNaN(lost.latenessUs.max));
  t.true(Number.isNaN(lost.interArrivalErrorUs.min));
  t.is(latenessUs({ scheduleNs: [], arrivalNs: [], originNs: 0 }).length, 0);
});

test('timingStats: mismatched lengths are rejected', (t) => {
  t.throws(() => timingStats({ scheduleNs: [0, 1], arrivalNs: [0], originNs: 0 }), { instanceOf: RangeError });
});

test('timingStats: 1e6 records in well under a second', (t) => {
  const n = 1_000_000;
  const origin = 3e14;
  const scheduleNs = new Float64Array(n);
  const arrivalNs = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    scheduleNs[i] = i * 1000;
    arrivalNs[i] = i % 1000 === 7 ? NaN : origin + i * 1000 + ((i * 7919) % 5000);
  }
  const t0 = performance.now();
  const s = timingStats({ scheduleNs, arrivalNs, originNs: origin });
  const ms = performance.now() - t0;
  t.is(s.lost, 1000);
  t.is(s.latenessUs.min, 0);
  t.true(s.latenessUs.max < 5);
  t.true(ms < 1500, `took ${ms.toFixed(0)} ms`);
});

test('percentile: nearest rank and edge cases', (t) => {
  const ten = Float64Array.from({ length: 10 }, (_, i) => i + 1); // 1..10
  t.is(percentile(ten, 0), 1);
  t.is(percentile(ten, 0.1), 1);
  t.is(percentile(ten, 0.11), 2);
  t.is(percentile(ten, 0.5), 5);
  t.is(percentile(ten, 0.9), 9);
  t.is(percentile(ten, 0.91), 10);
  t.is(percentile(ten, 1), 10);
  t.is(percentile(ten, 2), 10); // clamped
  t.is(percentile(ten, -1), 1);
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  t.is(percentile(hundred, 0.07), 7); // 0.07·100 = 7.000000000000001 in doubles
  t.is(percentile(hundred, 0.29), 29);
  t.is(percentile([42], 0), 42);
  t.is(percentile([42], 0.999), 42);
  t.true(Number.isNaN(percentile([], 0.5)));
  t.true(Number.isNaN(percentile(ten, NaN)));
});

test('distribution: sorts a copy and skips NaN', (t) => {
  const values = [3, NaN, 1, 2];
  const d = distribution(values);
  t.deepEqual(values.slice(0, 1), [3]); // untouched
  t.is(d.min, 1);
  t.is(d.max, 3);
  t.is(d.mean, 2);
  t.is(d.p50, 2);
  t.deepEqual(
    Object.values(distribution([])).map((v) => Number.isNaN(v)),
    [true, true, true, true, true, true, true],
  );
});

// --- pcap ------------------------------------------------------------------

test('writePcap → readPcap round trip', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'rt.pcap');
  const packets = [
    { timeNs: 0, payload: Uint8Array.of() },
    { timeNs: 1_499, payload: Uint8Array.of(1, 2, 3) }, // rounds to 1 µs
    { timeNs: 2_500_000_500, payload: new TextEncoder().encode('hello, pcap') }, // 2.5000005 s → 2 500 001 µs
    { timeNs: 3_999_999_600, payload: new Uint8Array(1000).map((_, i) => i & 0xff) }, // rounds across a second
  ];
  writePcap(file, packets, { dstPort: 9999, srcPort: 40000, srcIp: '10.1.2.3', dstIp: '192.168.200.7' });
  const pcap = readPcap(file);
  t.is(pcap.versionMajor, 2);
  t.is(pcap.versionMinor, 4);
  t.is(pcap.snaplen, 65535);
  t.is(pcap.linktype, 1);
  t.is(pcap.packets.length, packets.length);
  const base = PCAP_EPOCH_S * 1e6;
  t.deepEqual(
    pcap.packets.map((p) => p.timeUs - base),
    [0, 1, 2_500_001, 4_000_000],
  );
  pcap.packets.forEach((p, i) => {
    const payload = packets[i]!.payload;
    t.is(p.ethertype, 0x0800);
    t.is(p.capturedLength, 14 + 20 + 8 + payload.length);
    t.is(p.originalLength, p.capturedLength);
    t.truthy(p.ip);
    t.truthy(p.udp);
    const ip = p.ip!;
    t.is(ip.ihl, 5);
    t.is(ip.totalLength, 20 + 8 + payload.length);
    t.is(ip.id, i);
    t.is(ip.flags, 0b010); // DF
    t.is(ip.fragmentOffset, 0);
    t.is(ip.ttl, 64);
    t.is(ip.protocol, 17);
    t.is(ip.src, '10.1.2.3');
    t.is(ip.dst, '192.168.200.7');
    t.not(ip.checksum, 0);
    t.is(ipv4Checksum(ip.header), 0, 'checksum over the stored header verifies');
    const udp = p.udp!;
    t.is(udp.srcPort, 40000);
    t.is(udp.dstPort, 9999);
    t.is(udp.length, 8 + payload.length);
    t.is(udp.checksum, 0);
    t.deepEqual(Buffer.from(p.payload), Buffer.from(payload));
  });
});

test('writePcap: defaults, iterables, and file size of many packets', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'many.pcap');
  const n = 70_000; // more than 65536: the IP id wraps
  function* generate() {
    for (let i = 0; i < n; i++) yield { timeNs: i * 1000, payload: Uint8Array.of(i & 0xff, (i >> 8) & 0xff) };
  }
  writePcap(file, generate(), { dstPort: 5000 });
  t.is(statSync(file).size, 24 + n * (16 + 14 + 20 + 8 + 2));
  const { packets } = readPcap(file);
  t.is(packets.length, n);
  const last = packets[n - 1]!;
  t.is(last.ip!.src, '127.0.0.1');
  t.is(last.ip!.dst, '127.0.0.1');
  t.is(last.udp!.srcPort, 5000);
  t.is(last.ip!.id, (n - 1) & 0xffff);
  t.is(last.timeUs - PCAP_EPOCH_S * 1e6, n - 1);
  t.is(ipv4Checksum(last.ip!.header), 0);
});

test('writePcap: rejects bad input', (t) => {
  const file = join(tempDir(t), 'bad.pcap');
  t.throws(() => writePcap(file, [{ timeNs: 0, payload: new Uint8Array(MAX_UDP_PAYLOAD + 1) }], { dstPort: 1 }), { instanceOf: RangeError });
  t.throws(() => writePcap(file, [{ timeNs: -1, payload: new Uint8Array(1) }], { dstPort: 1 }), { instanceOf: RangeError });
  t.throws(() => writePcap(file, [], { dstPort: 70000 }), { instanceOf: RangeError });
  t.throws(() => writePcap(file, [], { dstPort: 1, dstIp: '127.0.0.256' }), { instanceOf: TypeError });
});

test('ipv4Checksum: RFC 1071 example header', (t) => {
  // A well-known sample header whose checksum is 0xb861.
  const header = Uint8Array.from(Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex'));
  t.is(ipv4Checksum(header), 0xb861);
  header[10] = 0xb8;
  header[11] = 0x61;
  t.is(ipv4Checksum(header), 0);
});

test('readPcap: rejects a file that is not a pcap', (t) => {
  const file = join(tempDir(t), 'not.pcap');
  writeFileSync(file, Buffer.alloc(64, 0x41));
  t.throws(() => readPcap(file), { message: /not a classic pcap/ });
});

// --- report ----------------------------------------------------------------

const nonFinite = /NaN|Infinity/;

test('markdownTable: alignment, escaping, number formatting', (t) => {
  const md = markdownTable(['contender', 'p50 µs', 'note'], [
    ['a|b', 12.345, 'x'],
    ['c', 1000, 'line1\nline2'],
    ['d', NaN, ''],
  ]);
  t.is(
    md,
    [
      '| contender | p50 µs | note |',
      '| --- | ---: | --- |',
      '| a\\|b | 12.35 | x |',
      '| c | 1000 | line1<br>line2 |',
      '| d | – |  |',
      '',
    ].join('\n'),
  );
  t.is(formatNumber(0.000123456), '0.000123');
  t.is(formatNumber(-Infinity), '–');
});

test('escapeXml', (t) => {
  t.is(escapeXml(`<a & "b" 'c'>`), '&lt;a &amp; &quot;b&quot; &apos;c&apos;&gt;');
});

test('cdfSvg: one path per series, escaped names, no NaN/Infinity', (t) => {
  const big = Float64Array.from({ length: 100_000 }, (_, i) => 0.05 + i * 0.02).sort();
  const svg = cdfSvg({
    title: 'Lateness <CDF>',
    series: [
      { name: 'engine <rust>', sortedUs: big },
      { name: 'empty', sortedUs: [] },
      { name: 'single', sortedUs: [7] },
      { name: 'early & zero', sortedUs: [-3, 0, 0, 0] },
    ],
  });
  t.true(svg.startsWith('<svg'));
  t.true(svg.trimEnd().endsWith('</svg>'));
  t.is(svg.match(/<path /g)?.length, 4);
  t.is(svg.match(/class="series"/g)?.length, 4);
  t.true(svg.includes('engine &lt;rust&gt;'));
  t.false(svg.includes('engine <rust>'));
  t.true(svg.includes('early &amp; zero'));
  t.true(svg.includes('<title>Lateness &lt;CDF&gt;</title>'));
  t.false(nonFinite.test(svg));
  t.true(svg.includes('drawn at 0.1'), 'notes clamped values');
  // Downsampled to ≤ 2000 points (each point is one H and one V command).
  const first = /class="series" d="([^"]*)"/.exec(svg)![1]!;
  t.true((first.match(/H/g)?.length ?? 0) < 2000);
  // The last point of the big series is its max, at y = top (fraction 1).
  const maxX = first.match(/H([\d.]+)V([\d.]+)$/);
  t.truthy(maxX);
  t.is(Number(maxX![2]), 40);

  const tail = cdfSvg({ title: 't', series: [{ name: 'x', sortedUs: big }], yScale: 'tail' });
  t.false(nonFinite.test(tail));
  t.true(tail.includes('>0.999<'));

  const none = cdfSvg({ title: 'nothing', series: [] });
  t.true(none.startsWith('<svg'));
  t.false(nonFinite.test(none));
  t.false(none.includes('<path'));
});

test('barSvg: bars, labels, targets, escaped names, no NaN/Infinity', (t) => {
  const svg = barSvg({
    title: 'Throughput',
    unit: 'k datagrams/s',
    bars: [
      { name: 'engine <fast>', value: 950, target: 1000 },
      { name: 'node', value: 120.5 },
      { name: 'broken', value: NaN, target: Infinity },
      { name: 'negative', value: -20 },
    ],
  });
  t.true(svg.startsWith('<svg'));
  t.is(svg.match(/class="bar"/g)?.length, 3);
  t.is(svg.match(/class="target"/g)?.length, 1);
  t.true(svg.includes('engine &lt;fast&gt;'));
  t.true(svg.includes('>950<'));
  t.true(svg.includes('>120.5<'));
  t.true(svg.includes('n/a'));
  t.false(nonFinite.test(svg));

  for (const bars of [[], [{ name: 'zero', value: 0 }], [{ name: 'only', value: 5 }]]) {
    const out = barSvg({ title: 'edge', unit: 'x', bars });
    t.true(out.startsWith('<svg'));
    t.false(nonFinite.test(out));
  }
});

// --- tcpreplay (never run here: it needs root and changes sysctls) ---------

test('tcpreplayVersion: null or a version string', (t) => {
  const version = tcpreplayVersion();
  if (version === null) t.log('tcpreplay is not installed');
  else t.regex(version, /^\d+\.\d+(\.\d+)?/);
  t.pass();
});

test('tcpreplay output and /proc stat parsing', (t) => {
  const out = [
    'Actual: 200000 packets (14000000 bytes) sent in 3.41 seconds',
    'Rated: 4100000.0 Bps, 32.8 Mbps, 58651.0 pps',
    'Statistics for network device: lo',
    '\tSuccessful packets:        199998',
    '\tFailed packets:            2',
  ].join('\n');
  t.deepEqual(parseTcpreplayOutput(out), { sent: 199998, failed: 2, sendSeconds: 3.41 });
  t.deepEqual(parseTcpreplayOutput('nothing'), {});
  // comm with spaces and parentheses must not shift the fields.
  const stat = '4242 (sh (a b)) S 1 4242 4242 0 -1 4194304 100 200 0 0 1 2 27 206 20 0 1 0 123 2000000 100 18446744073709551615';
  t.deepEqual(parseChildCpuTicks(stat), { cutime: 27, cstime: 206 });
});

// --- cpu -------------------------------------------------------------------

test('onCpu runs a command on that CPU only, or as it is', (t) => {
  t.deepEqual(onCpu(undefined, 'rx', ['--port', '0']), ['rx', ['--port', '0']]);
  const cpus = senderReceiverCpus();
  if (!cpus) return t.pass('taskset cannot pin this process to CPUs 0 and 1 here');
  for (const cpu of [cpus.sender, cpus.receiver]) {
    const [file, args] = onCpu(cpu, 'sh', ['-c', 'grep Cpus_allowed_list /proc/self/status']);
    const out = execFileSync(file, args, { encoding: 'utf8' });
    t.regex(out, new RegExp(`^Cpus_allowed_list:\\s+${cpu}\\s*$`));
  }
});
