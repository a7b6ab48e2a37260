// pcap/pcapng replay: captures written by tcpdump (-w) of real loopback
// traffic this file sends (UDP to two ports, IPv6 UDP, a TCP connection),
// on lo (Ethernet), any (Linux cooked SLL2), any -y LINUX_SLL (SLL), with ns
// timestamps and with a short snaplen; a pcapng written from the pcap's
// packets by the small independent writer below (tcpdump 4.99 cannot write
// pcapng); VLAN tags and fragments in frames built here; damage; replay to
// loopback receivers, to the original destinations or rewritten ones.
import test from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { MalformedRecordError, ReadPcap, Replay, type CapturedMessage } from '../src/index.js';
import { sleep, tempDir } from './helpers.js';

// ------------------------------------------------------------ tcpdump

/** Why tcpdump cannot capture here, or null when it can (checked once, at load). */
function tcpdumpProblem(): string | null {
  const version = spawnSync('tcpdump', ['--version'], { encoding: 'utf8' });
  if (version.error) return 'tcpdump is not installed (apt-get install tcpdump; .ci/run installs it)';
  const probe = spawnSync('tcpdump', ['-i', 'lo', '-c', '1', '-w', '/dev/null', 'udp port 9'], {
    encoding: 'utf8',
    timeout: 1500,
  });
  if (!/listening on/.test(probe.stderr ?? '')) return `tcpdump cannot capture on lo: ${(probe.stderr ?? '').trim().split('\n')[0]}`;
  return null;
}

const problem = tcpdumpProblem();
if (problem) console.log(`pcap.spec: the tcpdump tests are skipped: ${problem}`);
const withTcpdump = problem ? test.skip : test.serial;
const tcpdumpTitle = (title: string) => (problem ? `${title} (skipped: ${problem})` : title);

/** tcpdump writing `path`, once it listens; stop() ends it and waits. */
async function tcpdump(path: string, args: string[]): Promise<{ stop(): Promise<void> }> {
  const child: ChildProcess = spawn('tcpdump', ['-U', '-w', path, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tcpdump ${args.join(' ')} did not start: ${stderr}`)), 10_000);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => reject(new Error(`tcpdump exited (${code}): ${stderr}`)));
  });
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        child.removeAllListeners('exit');
        child.on('exit', () => resolve());
        child.kill('SIGINT');
      }),
  };
}

// ------------------------------------------------------------ traffic

interface Sent {
  port: number;
  payload: Buffer;
}

interface Receiver {
  socket: dgram.Socket;
  port: number;
  got: { payload: Buffer; at: bigint }[];
}

async function receiver(type: 'udp4' | 'udp6' = 'udp4'): Promise<Receiver> {
  const socket = dgram.createSocket(type);
  const r: Receiver = { socket, port: 0, got: [] };
  socket.on('message', (payload) => r.got.push({ payload, at: process.hrtime.bigint() }));
  await new Promise<void>((resolve) => socket.bind(0, type === 'udp4' ? '127.0.0.1' : '::1', resolve));
  r.port = socket.address().port;
  return r;
}

/** Binary payloads of several sizes, 0x00 bytes included (not msgpack). */
function payloadOf(i: number): Buffer {
  const size = [3, 40, 300, 1400, 9000][i % 5]!;
  const b = Buffer.alloc(size);
  for (let k = 0; k < size; k++) b[k] = (i * 31 + k * 7) & 0xff;
  b.write(`pkt-${i}`, 0);
  b[size - 1] = 0;
  return b;
}

const GAP_MS = 20;
const COUNT = 40;

interface Captured {
  dir: string;
  a: Receiver;
  b: Receiver;
  v6: Receiver;
  sent: Sent[];
  files: Record<'lo' | 'any' | 'sll' | 'nano' | 'snap', string>;
}

let captured: Promise<Captured> | undefined;

/** Send the traffic once, captured by five tcpdumps at the same time. */
function capture(): Promise<Captured> {
  captured ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'netreplay-pcap-'));
    const [a, b, v6] = [await receiver(), await receiver(), await receiver('udp6')];
    const server = net.createServer((s) => s.on('data', () => s.write('ack')));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const tcpPort = (server.address() as net.AddressInfo).port;
    const filter = `udp port ${a.port} or udp port ${b.port} or udp port ${v6.port} or tcp port ${tcpPort}`;
    const files = {
      lo: join(dir, 'lo.pcap'),
      any: join(dir, 'any.pcap'),
      sll: join(dir, 'sll.pcap'),
      nano: join(dir, 'nano.pcap'),
      snap: join(dir, 'snap.pcap'),
    };
    const dumps = await Promise.all([
      tcpdump(files.lo, ['-i', 'lo', filter]),
      tcpdump(files.any, ['-i', 'any', filter]),
      tcpdump(files.sll, ['-i', 'any', '-y', 'LINUX_SLL', filter]),
      tcpdump(files.nano, ['-i', 'lo', '--time-stamp-precision=nano', filter]),
      tcpdump(files.snap, ['-i', 'lo', '-s', '200', filter]),
    ]);
    const sender = dgram.createSocket('udp4');
    const sender6 = dgram.createSocket('udp6');
    const sent: Sent[] = [];
    const tcp = net.connect(tcpPort, '127.0.0.1');
    await new Promise<void>((resolve) => tcp.on('connect', resolve));
    const start = performance.now();
    for (let i = 0; i < COUNT; i++) {
      // On a schedule (not a chain of sleeps): datagram i at i·20 ms.
      while (performance.now() - start < i * GAP_MS) await sleep(1);
      const port = i % 2 === 0 ? a.port : b.port;
      const payload = payloadOf(i);
      sent.push({ port, payload });
      await new Promise<void>((resolve, reject) => sender.send(payload, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
      if (i % 10 === 5) tcp.write(`tcp data ${i}`);
      if (i % 13 === 0) {
        const p = Buffer.from(`six-${i}`);
        sent.push({ port: v6.port, payload: p });
        await new Promise<void>((resolve, reject) => sender6.send(p, v6.port, '::1', (e) => (e ? reject(e) : resolve())));
      }
    }
    await sleep(300);
    tcp.destroy();
    server.close();
    sender.close();
    sender6.close();
    await Promise.all(dumps.map((d) => d.stop()));
    return { dir, a, b, v6, sent, files };
  })();
  return captured;
}

function readAll(reader: ReadPcap): CapturedMessage[] {
  const out: CapturedMessage[] = [];
  for (let m = reader.read(); m !== null; m = reader.read()) out.push(m);
  return out;
}

function portOf(topic: string): number {
  return Number(topic.slice(topic.lastIndexOf(':') + 1));
}

// ------------------------------------------------------------ reading tcpdump's files

withTcpdump(tcpdumpTitle('tcpdump captures on lo, any (SLL2), any -y LINUX_SLL and with ns stamps read back every UDP datagram in order'), async (t) => {
  const c = await capture();
  for (const name of ['lo', 'any', 'sll', 'nano'] as const) {
    const reader = new ReadPcap(c.files[name]);
    const messages = readAll(reader);
    t.is(messages.length, c.sent.length, name);
    t.deepEqual(
      messages.map((m) => [portOf(m.topic), Buffer.from(m.payloadBytes).toString('hex')]),
      c.sent.map((s) => [s.port, s.payload.toString('hex')]),
      name,
    );
    t.true(messages.every((m) => m.type === null));
    t.true(messages.some((m) => m.topic === `[::1]:${c.v6.port}`), `${name}: IPv6 destination as [::1]:port`);
    t.is(messages[0]!.topic, `127.0.0.1:${c.a.port}`);
    t.is(reader.format, 'pcap');
    t.true(reader.counts.notUdp > 0, `${name}: the TCP packets are counted (${reader.counts.notUdp})`);
    t.is(reader.counts.datagrams, c.sent.length);
    t.deepEqual([...reader.destinations].sort(), [`127.0.0.1:${c.a.port}`, `127.0.0.1:${c.b.port}`, `[::1]:${c.v6.port}`].sort());
    // Times: from the first frame, increasing, about 20 ms per datagram.
    const times = messages.map((m) => m.elapsedTime);
    t.true(times.every((x, i) => i === 0 || x >= times[i - 1]!), name);
    const last = messages.at(-1)!;
    t.true(Math.abs(last.elapsedTime - messages[0]!.elapsedTime - (COUNT - 1) * GAP_MS * 1e-3) < 0.15, `${name}: span ${last.elapsedTime}`);
    t.is(typeof reader.baseNs, 'bigint');
    t.is(last.timeNs, reader.baseNs! + BigInt(Math.round(last.elapsedTime * 1e9)));
    t.true(Math.abs(Number(reader.baseNs! / 1_000_000n) - Date.now()) < 600_000, 'absolute times are the capture time');
  }
  // ns resolution keeps ns digits that a µs capture cannot have.
  const nano = readAll(new ReadPcap(c.files.nano)).map((m) => m.timeNs);
  t.true(nano.some((ns) => ns % 1000n !== 0n), 'some ns stamps are not whole µs');
  t.true(readAll(new ReadPcap(c.files.lo)).every((m) => m.timeNs % 1000n === 0n));
});

withTcpdump(tcpdumpTitle('a short snaplen: the datagrams it cut are skipped and counted as truncated'), async (t) => {
  const c = await capture();
  const reader = new ReadPcap(c.files.snap);
  const messages = readAll(reader);
  // Frame = 14 (Ethernet) + 20 (IPv4) + 8 (UDP) + payload ≤ 200 bytes: IPv4 payloads up to 158 bytes survive.
  const whole = c.sent.filter((s) => s.port !== c.v6.port ? s.payload.length <= 158 : s.payload.length <= 138);
  t.deepEqual(
    messages.map((m) => Buffer.from(m.payloadBytes).toString('hex')),
    whole.map((s) => s.payload.toString('hex')),
  );
  t.is(reader.counts.truncated, c.sent.length - whole.length);
  t.is(reader.skipped, reader.counts.truncated + reader.counts.notUdp);
});

withTcpdump(tcpdumpTitle('filters are applied in the reader: expression, dstPort, src'), async (t) => {
  const c = await capture();
  const onA = c.sent.filter((s) => s.port === c.a.port);
  const viaFilter = new ReadPcap(c.files.lo, { filter: `udp dst port ${c.a.port}` });
  t.is(readAll(viaFilter).length, onA.length);
  t.is(viaFilter.counts.filtered, c.sent.length - onA.length);
  t.deepEqual(viaFilter.destinations, [`127.0.0.1:${c.a.port}`]);
  t.is(readAll(new ReadPcap(c.files.lo, { dstPort: [c.a.port, c.b.port] })).length, c.sent.length - c.sent.filter((s) => s.port === c.v6.port).length);
  t.is(readAll(new ReadPcap(c.files.lo, { filter: 'ip6' })).length, c.sent.filter((s) => s.port === c.v6.port).length);
  t.is(readAll(new ReadPcap(c.files.lo, { src: '10.1.2.3' })).length, 0);
  const onV6 = c.sent.filter((s) => s.port === c.v6.port).length;
  t.is(readAll(new ReadPcap(c.files.lo, { filter: `not dst port ${c.a.port} and ip`, src: '127.0.0.1' })).length, c.sent.length - onA.length - onV6);
  const err = t.throws(() => new ReadPcap(c.files.lo, { filter: 'udp dst prot 1' }));
  t.regex(err!.message, /'prot' at position 8/);
  t.throws(() => new ReadPcap(c.files.lo, { filter: 'tcp port 80' }), { message: /only UDP/ });
  t.throws(() => new ReadPcap(c.files.lo, { dstPort: 70000 }), { instanceOf: RangeError });
  t.throws(() => new ReadPcap(c.files.lo, { nope: 1 } as never), { instanceOf: TypeError, message: /unknown option 'nope'/ });
});

// ------------------------------------------------------------ pcapng, VLAN, fragments (independent writers)

/** pcapng (little-endian) from packets of several interfaces: [link type, if_tsresol]; packets [iface, units, frame]. */
function writePcapng(path: string, interfaces: [number, number][], packets: [number, bigint, Buffer][]): void {
  const block = (type: number, body: Buffer) => {
    const padded = Buffer.concat([body, Buffer.alloc((4 - (body.length % 4)) % 4)]);
    const head = Buffer.alloc(8);
    head.writeUInt32LE(type, 0);
    head.writeUInt32LE(12 + padded.length, 4);
    const tail = Buffer.alloc(4);
    tail.writeUInt32LE(12 + padded.length, 0);
    return Buffer.concat([head, padded, tail]);
  };
  const shb = Buffer.alloc(16);
  shb.writeUInt32LE(0x1a2b3c4d, 0);
  shb.writeUInt16LE(1, 4);
  shb.writeBigInt64LE(-1n, 8);
  const parts = [block(0x0a0d0d0a, shb)];
  for (const [linktype, tsresol] of interfaces) {
    const idb = Buffer.alloc(20);
    idb.writeUInt16LE(linktype, 0);
    idb.writeUInt32LE(262144, 4);
    idb.writeUInt16LE(9, 8); // if_tsresol
    idb.writeUInt16LE(1, 10);
    idb[12] = tsresol;
    parts.push(block(1, idb)); // opt_endofopt: the zeros after it
  }
  for (const [iface, ts, frame] of packets) {
    const epb = Buffer.alloc(20);
    epb.writeUInt32LE(iface, 0);
    epb.writeUInt32LE(Number(ts >> 32n), 4);
    epb.writeUInt32LE(Number(ts & 0xffffffffn), 8);
    epb.writeUInt32LE(frame.length, 12);
    epb.writeUInt32LE(frame.length, 16);
    parts.push(block(6, Buffer.concat([epb, frame])));
  }
  writeFileSync(path, Buffer.concat(parts));
}

/** The frames of a µs or ns pcap (little-endian): [time ns, frame]. */
function pcapFrames(path: string): [bigint, Buffer<ArrayBufferLike>][] {
  const bytes = readFileSync(path);
  const nanos = bytes.readUInt32LE(0) === 0xa1b23c4d;
  const out: [bigint, Buffer<ArrayBufferLike>][] = [];
  for (let at = 24; at + 16 <= bytes.length; ) {
    const ns = BigInt(bytes.readUInt32LE(at)) * 1_000_000_000n + BigInt(bytes.readUInt32LE(at + 4)) * (nanos ? 1n : 1000n);
    const len = bytes.readUInt32LE(at + 8);
    out.push([ns, bytes.subarray(at + 16, at + 16 + len)]);
    at += 16 + len;
  }
  return out;
}

/** A µs pcap (little-endian) of Ethernet frames. */
function writePcap(path: string, frames: [bigint, Buffer<ArrayBufferLike>][]): void {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(262144, 16);
  head.writeUInt32LE(1, 20);
  const parts: Buffer<ArrayBufferLike>[] = [head];
  for (const [ns, frame] of frames) {
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(Number(ns / 1_000_000_000n), 0);
    rec.writeUInt32LE(Number((ns % 1_000_000_000n) / 1000n), 4);
    rec.writeUInt32LE(frame.length, 8);
    rec.writeUInt32LE(frame.length, 12);
    parts.push(rec, frame);
  }
  writeFileSync(path, Buffer.concat(parts));
}

withTcpdump(tcpdumpTitle("pcapng with two interfaces (Ethernet µs, raw IP ns) from tcpdump's packets reads the same datagrams and times"), async (t) => {
  const c = await capture();
  const frames = pcapFrames(c.files.nano);
  // Even packets on interface 0 as Ethernet with µs stamps; odd ones on interface 1 as raw IP (no Ethernet header) in ns.
  const packets: [number, bigint, Buffer][] = frames.map(([ns, frame], i) =>
    i % 2 === 0 ? [0, ns / 1000n, frame] : [1, ns, frame.subarray(14)],
  );
  const path = join(tempDir(t), 'two.pcapng');
  writePcapng(path, [[1, 6], [101, 9]], packets);
  const ng = new ReadPcap(path);
  t.is(ng.format, 'pcapng');
  const fromNg = readAll(ng);
  const fromPcap = readAll(new ReadPcap(c.files.nano));
  t.deepEqual(fromNg.map((m) => [m.topic, Buffer.from(m.payloadBytes).toString('hex')]), fromPcap.map((m) => [m.topic, Buffer.from(m.payloadBytes).toString('hex')]));
  const expected = frames.map(([ns], i) => (i % 2 === 0 ? (ns / 1000n) * 1000n : ns));
  const udpFrames = new Set(fromPcap.map((m) => m.timeNs));
  t.deepEqual(
    fromNg.map((m) => m.timeNs),
    expected.filter((_, i) => udpFrames.has(frames[i]![0])),
  );
});

withTcpdump(tcpdumpTitle('VLAN and QinQ tags are read through; IPv4 fragments are skipped and counted'), async (t) => {
  const c = await capture();
  const udp = readAll(new ReadPcap(c.files.lo));
  const frames = pcapFrames(c.files.lo).filter(([, f]) => f[23] === 17 && f.readUInt16BE(12) === 0x0800).slice(0, 6);
  const tag = (frame: Buffer, tpids: number[]) =>
    Buffer.concat([frame.subarray(0, 12), ...tpids.map((tpid) => Buffer.from([tpid >> 8, tpid & 0xff, 0, 7])), frame.subarray(12)]);
  const fragment = (frame: Buffer) => {
    const f = Buffer.from(frame);
    f.writeUInt16BE(0x2000, 14 + 6); // more fragments, offset 0
    return f;
  };
  const built: [bigint, Buffer<ArrayBufferLike>][] = [
    [frames[0]![0], tag(frames[0]![1], [0x8100])],
    [frames[1]![0], tag(frames[1]![1], [0x88a8, 0x8100])],
    [frames[2]![0], fragment(frames[2]![1])],
    [frames[3]![0], frames[3]![1]],
  ];
  const path = join(tempDir(t), 'vlan.pcap');
  writePcap(path, built);
  const reader = new ReadPcap(path);
  const got = readAll(reader);
  // The UDP payload of an untagged Ethernet/IPv4 frame (no IP options, as Linux sends).
  const payloadOfFrame = (f: Buffer) => f.subarray(42, 34 + f.readUInt16BE(38)).toString('hex');
  t.deepEqual(got.map((m) => Buffer.from(m.payloadBytes).toString('hex')), [0, 1, 3].map((i) => payloadOfFrame(frames[i]![1])));
  t.true([0, 1, 3].every((i) => udp.some((m) => Buffer.from(m.payloadBytes).toString('hex') === payloadOfFrame(frames[i]![1]))));
  t.is(reader.counts.fragments, 1);
  t.is(reader.counts.datagrams, 3);
});

// ------------------------------------------------------------ damage

withTcpdump(tcpdumpTitle('a capture cut short: an error naming the file, packet and byte offset, or a counted skip; bad magic'), async (t) => {
  const c = await capture();
  const bytes = readFileSync(c.files.lo);
  const frames = pcapFrames(c.files.lo);
  const lastLen = 16 + frames.at(-1)![1].length;
  const lastAt = bytes.length - lastLen;
  const dir = tempDir(t);
  const cut = join(dir, 'cut.pcap');
  writeFileSync(cut, bytes.subarray(0, lastAt + 20));
  const reader = new ReadPcap(cut);
  t.regex(reader.damage ?? '', new RegExp(`byte offset ${lastAt}`));
  const err = t.throws(() => readAll(reader), { instanceOf: MalformedRecordError });
  t.true(err!.message.includes(cut) && err!.message.includes(`byte offset ${lastAt}`) && /cut short/.test(err!.message), err!.message);
  t.is((err as MalformedRecordError).byteOffset, lastAt);
  t.is((err as MalformedRecordError).line, frames.length, 'the packet number');
  const skipping = new ReadPcap(cut, { onError: 'skip' });
  const before = skipping.skipped;
  const all = readAll(skipping);
  t.true(all.length >= c.sent.length - 1);
  t.is(skipping.skipped, before + 1);
  // Cut inside the file header, and not a capture at all.
  writeFileSync(join(dir, 'head.pcap'), bytes.subarray(0, 10));
  t.throws(() => new ReadPcap(join(dir, 'head.pcap')), { instanceOf: MalformedRecordError, message: /head\.pcap.*pcap header/ });
  writeFileSync(join(dir, 'text.pcap'), 'not a capture at all\n');
  t.throws(() => new ReadPcap(join(dir, 'text.pcap')), { message: /text\.pcap.*not a pcap or pcapng file: magic/ });
  // A replay of the cut file ends with that error, after the datagrams before it.
  const replay = new Replay(cut, { speed: Infinity });
  let n = 0;
  replay.on('message', () => n++);
  replay.start();
  await t.throwsAsync(replay.done, { instanceOf: MalformedRecordError });
  t.is(n, all.length);
  replay.close();
});

// ------------------------------------------------------------ replay

withTcpdump(tcpdumpTitle('replay sends the raw payloads to the original destinations with the captured timing'), async (t) => {
  const c = await capture();
  for (const r of [c.a, c.b, c.v6]) r.got.length = 0;
  const messages = readAll(new ReadPcap(c.files.lo));
  const replay = new Replay(c.files.lo, { js: false, udp: {} });
  const started = process.hrtime.bigint();
  replay.start();
  await replay.done;
  await sleep(100);
  const stats = replay.udpStats()!;
  replay.close();
  t.is(stats.recordsSent, c.sent.length);
  for (const r of [c.a, c.b, c.v6]) {
    const expected = c.sent.filter((s) => s.port === r.port).map((s) => s.payload.toString('hex'));
    t.deepEqual(r.got.map((g) => g.payload.toString('hex')), expected, `port ${r.port}`);
  }
  // Inter-arrival timing at A follows the capture's (loose: a shared 2-core machine).
  const want = messages.filter((m) => portOf(m.topic) === c.a.port).map((m) => m.elapsedTime);
  const got = c.a.got.map((g) => Number(g.at - started) / 1e9);
  const errors = want.slice(1).map((w, i) => Math.abs(got[i + 1]! - got[i]! - (w - want[i]!)));
  errors.sort((x, y) => x - y);
  t.true(errors[Math.floor(errors.length / 2)]! < 0.01, `median gap error ${errors[Math.floor(errors.length / 2)]} s`);
  const span = got.at(-1)! - got[0]!;
  t.true(Math.abs(span - (want.at(-1)! - want[0]!)) < 0.08, `span ${span} s vs ${want.at(-1)! - want[0]!} s`);
});

withTcpdump(tcpdumpTitle('replay rewrites destinations: an exact ip:port, *:port, and one destination for the rest'), async (t) => {
  const c = await capture();
  const [exact, byPort, rest] = [await receiver(), await receiver(), await receiver()];
  t.teardown(() => [exact, byPort, rest].forEach((r) => r.socket.close()));
  const replay = new Replay(c.files.any, {
    speed: Infinity,
    js: false,
    udp: {
      destination: `udp://127.0.0.1:${rest.port}`,
      map: { [`127.0.0.1:${c.a.port}`]: `udp://127.0.0.1:${exact.port}`, [`*:${c.v6.port}`]: `udp://127.0.0.1:${byPort.port}` },
    },
  });
  replay.start();
  await replay.done;
  replay.close();
  const payloads = (port: number) => c.sent.filter((s) => s.port === port).map((s) => s.payload.toString('hex'));
  await waitFor(() => exact.got.length + byPort.got.length + rest.got.length >= c.sent.length);
  t.deepEqual(exact.got.map((g) => g.payload.toString('hex')), payloads(c.a.port));
  t.deepEqual(byPort.got.map((g) => g.payload.toString('hex')), payloads(c.v6.port));
  t.deepEqual(rest.got.map((g) => g.payload.toString('hex')), payloads(c.b.port));
});

withTcpdump(tcpdumpTitle('Replay of a capture: detected by content, payloads as bytes, filters and topics'), async (t) => {
  const c = await capture();
  // A capture under a name that says nothing.
  const path = join(tempDir(t), 'capture.log');
  writeFileSync(path, readFileSync(c.files.sll));
  const seen: [string, string][] = [];
  for await (const m of new Replay(path, { speed: Infinity, dstPort: c.b.port })) {
    seen.push([m.topic, Buffer.from(m.payloadBytes!).toString('hex')]);
    t.is(m.type, null);
    t.is(m.payload, undefined, 'not decoded as msgpack');
  }
  t.deepEqual(seen, c.sent.filter((s) => s.port === c.b.port).map((s) => [`127.0.0.1:${c.b.port}`, s.payload.toString('hex')]));
  // Topic filters work on destinations; seek by the index.
  const r = new Replay(c.files.lo, { speed: Infinity, topics: [`127.0.0.1:${c.a.port}`], startPaused: true });
  const first: CapturedMessage[] = [];
  r.start();
  r.seek(0.4);
  r.on('message', (m) => first.push(m as never));
  await r.step(1);
  r.close();
  t.true(first[0]!.elapsedTime >= 0.4 && first[0]!.topic === `127.0.0.1:${c.a.port}`, `${first[0]?.elapsedTime}`);
  t.throws(() => new Replay(c.files.lo, { filter: 'port x' }), { message: /'x' at position 5/ });
});

test('filter options on MCL logs are an error; a path that is no capture is read as MCL', async (t) => {
  const { dataset } = await import('./helpers.js');
  t.throws(() => new Replay(dataset, { dstPort: 1 }), { instanceOf: TypeError, message: /applies to capture paths/ });
});

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond() && Date.now() < until) await sleep(10);
}

test.after.always(async () => {
  if (!captured) return;
  const c = await captured;
  for (const r of [c.a, c.b, c.v6]) r.socket.close();
});
