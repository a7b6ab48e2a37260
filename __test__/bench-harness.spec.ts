// The timing harness end to end: the real kernel-timestamping receiver
// (crates/netreplay-bench), its file format and clock conversion, and the
// statistics, on datagrams whose send times this test knows.
import test from 'ava';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { buildReceiver, startReceiver } from '../bench/lib/receiver.js';
import { datagramOf } from '../bench/lib/schedule.js';
import { timingStats } from '../bench/lib/stats.js';
import { root, tempDir } from './helpers.js';

const now = () => Number(process.hrtime.bigint());

test('kernel receive timestamps fall inside each datagram send, and the statistics follow', async (t) => {
  const bin = buildReceiver(root);
  const count = 200;
  const rx = await startReceiver(bin, { out: join(tempDir(t), 'rx.bin'), count, expect: count });
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const before = new Float64Array(count);
  const after = new Float64Array(count);
  const origin = now();
  for (let i = 0; i < count; i++) {
    before[i] = now();
    // The callback comes after the kernel took the datagram (on loopback,
    // after the receiver's timestamp).
    await new Promise<void>((resolve, reject) => socket.send(datagramOf(i), rx.port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
    after[i] = now();
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 2));
  }
  socket.close();
  const got = await rx.arrivals;
  t.is(got.received, count);
  t.is(got.unexpected, 0);
  t.is(got.summary.noTimestamp, 0);
  for (let i = 0; i < count; i++) {
    const at = got.arrivalNs[i]!;
    // 50 µs for the realtime → monotonic conversion.
    t.true(at >= before[i]! - 50_000 && at <= after[i]! + 50_000, `datagram ${i}: ${at - before[i]!} ns after its send began`);
  }
  // Scheduled at the send calls' start: lateness = the send path, ≥ 0 and small.
  const scheduleNs = before.map((b) => b - origin);
  const stats = timingStats({ scheduleNs, arrivalNs: got.arrivalNs, originNs: origin });
  t.is(stats.lost, 0);
  t.true(stats.latenessUs.min >= -50, `min ${stats.latenessUs.min} µs`);
  t.true(stats.latenessUs.p50 < 5_000, `p50 ${stats.latenessUs.p50} µs`);
  const spans = Array.from(after, (a, i) => (a - before[i]!) / 1e3);
  t.true(stats.latenessUs.max <= Math.max(...spans) + 50, `max ${stats.latenessUs.max} µs vs the longest send ${Math.max(...spans)} µs`);
});
