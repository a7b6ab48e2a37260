import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import {
  NetworkError,
  Listener,
  ReadDirectory,
  ReadFile,
  Replay,
  WriteFile,
  record,
  type LoggedMessage,
  type ReceivedMessage,
} from '../src/index.js';
import { dataset, root, sleep, tempDir, writeLog } from './helpers.js';

const packr = new Packr({ useRecords: false });
const cli = join(root, 'src', 'cli.ts');

function readAll(reader: ReadFile | ReadDirectory): LoggedMessage[] {
  const out: LoggedMessage[] = [];
  for (let m = reader.read(); m !== null; m = reader.read()) out.push(m);
  return out;
}

/** Collect a listener's messages until `n` arrived (or fail after `ms`). */
function collect(listener: Listener, n: number, ms = 10_000): Promise<ReceivedMessage[]> {
  const got: ReceivedMessage[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`received ${got.length} of ${n} messages; stats ${JSON.stringify(listener.stats())}`)),
      ms,
    );
    listener.on('message', (m) => {
      got.push(m);
      if (got.length === n) {
        clearTimeout(timer);
        // Anything beyond n would be a duplicate: give it a moment to show.
        setTimeout(() => resolve(got), 50);
      }
    });
  });
}

function sameAsSource(t: { deepEqual(a: unknown, b: unknown, m?: string): void }, got: ReceivedMessage[], source: LoggedMessage[]) {
  t.deepEqual(
    got.map((m) => ({ topic: m.topic, type: m.type, bytes: Buffer.from(m.payloadBytes).toString('hex') })),
    source.map((m) => ({ topic: m.topic, type: m.type, bytes: Buffer.from(m.payloadBytes!).toString('hex') })),
  );
}

/** Whether this host can bind IPv6 loopback (containers may lack it). */
async function ipv6Loopback(): Promise<string | null> {
  const socket = dgram.createSocket('udp6');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '::1', () => resolve());
    });
    return null;
  } catch (err) {
    return (err as Error).message;
  } finally {
    try {
      socket.close();
    } catch {
      // never bound
    }
  }
}
const MULTICAST_GROUP = '239.255.77.1';
// Probed before any test is declared (ava wants declarations in the first tick after this).
const [noIpv6, noMulticast] = await Promise.all([ipv6Loopback(), ipv4MulticastLoopback(MULTICAST_GROUP)]);

test('a replay of the fixture directory crosses loopback UDP identically: topic, type, bytes, order', async (t) => {
  const source = readAll(new ReadDirectory(dataset));
  t.is(source.length, 20);
  const listener = new Listener('udp://127.0.0.1:0');
  t.teardown(() => listener.close());
  t.regex(listener.urls[0]!, /^udp:\/\/127\.0\.0\.1:\d+$/);
  const received = collect(listener, source.length);
  const replay = new Replay(dataset, { speed: 20, udp: { destination: listener.urls[0]! } });
  t.teardown(() => replay.close());
  let delivered = 0;
  replay.on('message', () => delivered++);
  replay.start();
  await replay.done;
  const got = await received;
  sameAsSource(t, got, source);
  t.is(delivered, 20, 'JS delivery goes on alongside UDP');
  t.true(got.every((m) => m.fragments === 1 && /^127\.0\.0\.1:\d+$/.test(m.source)));
  t.true(got.every((m, i) => i === 0 || m.receivedAt >= got[i - 1]!.receivedAt));
  t.deepEqual(got[0]!.payload, { timestamp: 0, data: 0, name: 'UnitTestMessageA' });
  const u = replay.udpStats()!;
  t.like(u, { records: 20, recordsSent: 20, datagrams: 20, sendFailures: 0, unrouted: 0, failed: false });
  t.is(u.bytes, listener.stats().bytes);
  t.is(u.lateness.count, 20);
  t.true(u.lateness.max < 0.5, `send lateness max ${u.lateness.max} s`);
  t.like(listener.stats(), { datagrams: 20, messages: 20, garbage: 0, dropped: 0 });
});

test('routes by type apply to records of a reader written in JS (its types appear as it reads)', async (t) => {
  const a = new Listener('udp://127.0.0.1:0');
  const rest = new Listener('udp://127.0.0.1:0');
  t.teardown(() => {
    a.close();
    rest.close();
  });
  const gotA = collect(a, 5);
  const gotRest = collect(rest, 5);
  // 5 records of type A interleaved with 5 of B: A's first appears after B's.
  const records = Array.from({ length: 10 }, (_, i) => ({
    elapsedTime: i * 0.001,
    topic: 't',
    type: i % 2 === 0 ? 'B' : 'A',
    payload: { name: i % 2 === 0 ? 'B' : 'A', i },
  }));
  let next = 0;
  const reader = {
    read: () => records[next++] ?? null,
    isDataPending: () => next < records.length,
    reset: () => void (next = 0),
  };
  const replay = new Replay(reader, {
    speed: Infinity,
    js: false,
    udp: { destination: rest.urls[0]!, routes: [{ type: 'A', destination: a.urls[0]! }] },
  });
  t.teardown(() => replay.close());
  replay.start();
  await replay.done;
  t.deepEqual(
    (await gotA).map((m) => (m.payload as { i: number }).i),
    [1, 3, 5, 7, 9],
    'every type-A record reaches its route',
  );
  t.deepEqual(
    (await gotRest).map((m) => (m.payload as { i: number }).i),
    [0, 2, 4, 6, 8],
  );
  t.like(replay.udpStats(), { records: 10, unrouted: 0 });
});

test('js: false plays to UDP only and still ends; routes send each type to its own address', async (t) => {
  const a = new Listener('udp://127.0.0.1:0');
  const b = new Listener('udp://127.0.0.1:0');
  t.teardown(() => {
    a.close();
    b.close();
  });
  const gotA = collect(a, 10);
  const gotB = collect(b, 10);
  const replay = new Replay(dataset, {
    speed: Infinity,
    js: false,
    udp: {
      routes: [
        { type: 'UnitTestMessageA', destination: a.urls[0]! },
        { type: 'UnitTestMessageB', destination: b.urls[0]! },
      ],
    },
  });
  t.teardown(() => replay.close());
  let delivered = 0;
  replay.on('message', () => delivered++);
  let ended = false;
  replay.on('end', () => (ended = true));
  replay.start();
  await replay.done;
  t.true(ended);
  t.is(delivered, 0);
  t.true((await gotA).every((m) => m.type === 'UnitTestMessageA'));
  t.true((await gotB).every((m) => m.type === 'UnitTestMessageB'));
  t.is(replay.stats().delivered, 20);
  t.like(replay.udpStats(), { records: 20, datagrams: 20, unrouted: 0 });
  t.is(new Replay(dataset).udpStats(), null);
});

test('send failures are counted and reported, and stop the replay only with failOnError', async (t) => {
  // A port nobody listens on: the connected socket reports ICMP port unreachable.
  const probe = new Listener('udp://127.0.0.1:0');
  const closed = probe.urls[0]!;
  probe.close();
  const replay = new Replay(dataset, { speed: 50, js: false, udp: { destination: closed } });
  t.teardown(() => replay.close());
  const reports: number[] = [];
  replay.on('udpFailures', (s) => reports.push(s.sendFailures));
  replay.start();
  await replay.done;
  const u = replay.udpStats()!;
  t.true(u.failures.refused > 0, JSON.stringify(u));
  t.is(u.records, 20, 'the replay went on to the end');
  t.is(u.sendFailures, u.failures.refused);
  t.regex(u.lastError ?? '', /refused/i);
  t.deepEqual(reports, [u.sendFailures]);

  const strict = new Replay(dataset, { speed: 50, js: false, udp: { destination: closed, failOnError: true } });
  t.teardown(() => strict.close());
  strict.start();
  const err = await t.throwsAsync(strict.done, { instanceOf: NetworkError });
  t.regex(err!.message, /refused/i);
  t.is((err as NetworkError).url, closed);
  t.true(strict.udpStats()!.failed);
  t.true(strict.udpStats()!.records < 20);
});

test('a 200 kB payload crosses as fragments and is reassembled byte-exact', async (t) => {
  const dir = tempDir(t);
  const blob = Buffer.alloc(200_000);
  for (let i = 0; i < blob.length; i++) blob[i] = (i * 7919 + (i >> 8)) & 0xff;
  const log = writeLog(join(dir, 'Big.log'), [{ t: 0, topic: 'big', payload: { name: 'Big', blob } }], 'Big');
  const [source] = readAll(new ReadFile(log));
  const listener = new Listener('udp://127.0.0.1:0');
  t.teardown(() => listener.close());
  const received = collect(listener, 1);
  const replay = new Replay(log, { speed: Infinity, udp: { destination: listener.urls[0]! } });
  t.teardown(() => replay.close());
  replay.start();
  await replay.done;
  const [m] = await received;
  t.true(Buffer.from(m!.payloadBytes).equals(Buffer.from(source!.payloadBytes!)));
  t.is(m!.topic, 'big');
  t.is(m!.type, 'Big');
  t.true(Buffer.from((m!.payload as { blob: Uint8Array }).blob).equals(blob));
  t.is(m!.fragments, 4);
  t.like(replay.udpStats(), { records: 1, fragmented: 1, datagrams: 4, sendFailures: 0 });
  t.like(listener.stats(), { datagrams: 4, fragments: 4, reassembled: 1, messages: 1, pendingMessages: 0 });
});

test('a lost fragment is a counted drop; garbage and truncated datagrams are counted, never fatal', async (t) => {
  const listener = new Listener('udp://127.0.0.1:0', { reassemblyTimeout: 0.1 });
  t.teardown(() => listener.close());
  const got: ReceivedMessage[] = [];
  listener.on('message', (m) => got.push(m));
  const [host, port] = [listener.addresses[0]!.split(':')[0]!, Number(listener.addresses[0]!.split(':')[1])];
  const socket = dgram.createSocket('udp4');
  t.teardown(() => socket.close());
  const send = (b: Uint8Array) => new Promise<void>((r, j) => socket.send(b, port, host, (e) => (e ? j(e) : r())));
  const payload = packr.pack({ name: 'X', data: Buffer.alloc(200, 1) }); // 216 bytes: slices of 100, 100, 16
  const cut = [payload.subarray(0, 100), payload.subarray(100, 200), payload.subarray(200)];
  await send(packr.pack(['lost', 1, 3, cut[0]]));
  await send(packr.pack(['lost', 3, 3, cut[2]])); // fragment 2 never comes
  await send(Buffer.from('hello, not msgpack'));
  await send(packr.pack(['t', { name: 'Y' }]).subarray(0, 5)); // truncated
  await send(packr.pack(['ok', { name: 'Z' }]));
  await sleep(600);
  t.deepEqual(
    got.map((m) => [m.topic, m.type]),
    [['ok', 'Z']],
  );
  const s = listener.stats();
  t.is(s.garbage, 2);
  t.is(s.reassemblyDropped, 1);
  t.is(s.reassemblyTimedOut, 1);
  t.is(s.pendingMessages, 0);
  t.is(s.pendingBytes, 0);
  t.truthy(s.lastError);
});

(noIpv6 ? test.skip : test)('IPv6 loopback (::1) unicast', async (t) => {
  const listener = new Listener('udp://[::1]:0');
  t.teardown(() => listener.close());
  t.regex(listener.urls[0]!, /^udp:\/\/\[::1\]:\d+$/);
  const source = readAll(new ReadDirectory(dataset));
  const received = collect(listener, 20);
  const replay = new Replay(dataset, { speed: Infinity, js: false, udp: { destination: listener.urls[0]! } });
  t.teardown(() => replay.close());
  replay.start();
  await replay.done;
  const got = await received;
  sameAsSource(t, got, source);
  t.true(got.every((m) => m.source.startsWith('[::1]:')));
});
if (noIpv6) test('IPv6 loopback is unavailable here, so its test is skipped', (t) => {
    t.log(noIpv6);
    t.pass();
  });

/** Whether IPv4 multicast loops back on 127.0.0.1 here (null) or why not. */
async function ipv4MulticastLoopback(group: string): Promise<string | null> {
  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, () => resolve());
    });
    socket.addMembership(group, '127.0.0.1');
    socket.setMulticastInterface('127.0.0.1');
    socket.setMulticastLoopback(true);
    const got = new Promise<boolean>((resolve) => {
      socket.once('message', () => resolve(true));
      setTimeout(() => resolve(false), 500);
    });
    socket.send('probe', socket.address().port, group);
    return (await got) ? null : 'a datagram sent to the group on 127.0.0.1 did not come back';
  } catch (err) {
    return (err as Error).message;
  } finally {
    socket.close();
  }
}

(noMulticast ? test.skip : test)('IPv4 multicast on loopback: the listener joins the group, the sink sends to it', async (t) => {
  const listener = new Listener(`udp://${MULTICAST_GROUP}:0`, { interface: '127.0.0.1' });
  t.teardown(() => listener.close());
  const url = listener.urls[0]!;
  t.regex(url, new RegExp(`^udp://${MULTICAST_GROUP.replaceAll('.', '\\.')}:\\d+$`));
  const source = readAll(new ReadDirectory(dataset));
  const received = collect(listener, 20);
  const replay = new Replay(dataset, {
    speed: Infinity,
    js: false,
    udp: { destination: url, interface: '127.0.0.1', hopLimit: 0 },
  });
  t.teardown(() => replay.close());
  replay.start();
  await replay.done;
  sameAsSource(t, await received, source);
  t.like(replay.udpStats(), { datagrams: 20, sendFailures: 0 });
});
if (noMulticast) {
  test('IPv4 multicast loopback is unavailable here, so its test is skipped', (t) => {
    t.log(noMulticast);
    t.pass();
  });
}

test('WriteFile writes MCL logs to the character, .tmp until closed; ReadFile reads them back', (t) => {
  const dir = tempDir(t);
  const prefix = join(dir, 'Foo');
  const w = new WriteFile(prefix, { type: 'Foo', created: '1970-01-01 00:00:00', revision: 'abc' });
  t.is(w.currentPath, null, 'nothing before the first record');
  w.write(0.01, '', { name: 'Foo', data: 1 });
  w.write(1.5, 'gnss', packr.pack({ name: 'Foo', data: 2 }));
  w.write(12.345678, 'a_long_topic', { name: 'Foo', data: 3 });
  t.is(w.currentPath, `${prefix}.tmp`);
  t.true(existsSync(`${prefix}.tmp`));
  t.is(w.entries, 3);
  t.deepEqual(w.close(), [`${prefix}.log`]);
  t.deepEqual(w.close(), [], 'close twice is harmless');
  t.false(existsSync(`${prefix}.tmp`));
  const text = readFileSync(`${prefix}.log`, 'utf8');
  const lines = text.split('\n');
  t.is(lines[0], '#' + '-'.repeat(65));
  t.is(lines[1], '# MCL_LOG');
  t.is(lines[2], '#     -- version     1.0');
  t.is(lines[3], '#     -- revision    abc');
  t.is(lines[4], '#     -- created     1970-01-01 00:00:00');
  t.is(lines[16], '#      >>> Foo');
  t.is(lines[18], '#     <Time>    <Topic>     <Payload>');
  t.is(lines[19], '#' + '-'.repeat(65));
  const hex = (v: unknown) => Buffer.from(packr.pack(v)).toString('hex');
  t.is(lines[20], `     0.01000    ''          ${hex({ name: 'Foo', data: 1 })}`);
  t.is(lines[21], `     1.50000    'gnss'      ${hex({ name: 'Foo', data: 2 })}`);
  t.is(lines[22], `    12.34568    'a_long_topic'    ${hex({ name: 'Foo', data: 3 })}`);
  t.is(lines[23], '');
  const reader = new ReadFile(`${prefix}.log`);
  t.like(reader.header, { version: '1.0', revision: 'abc', created: '1970-01-01 00:00:00', messageType: 'Foo' });
  t.deepEqual(
    readAll(reader).map((m) => [m.elapsedTime, m.topic, m.type, m.payload]),
    [
      [0.01, '', 'Foo', { name: 'Foo', data: 1 }],
      [1.5, 'gnss', 'Foo', { name: 'Foo', data: 2 }],
      [12.34568, 'a_long_topic', 'Foo', { name: 'Foo', data: 3 }],
    ],
  );
});

test('WriteFile refuses the times the reader cannot read back, and writes the extremes it can', (t) => {
  const dir = tempDir(t);
  const prefix = join(dir, 'Edge');
  const w = new WriteFile(prefix, { type: 'Edge' });
  // 1e300 used to saturate to 9223372036.85478, which the reader refused.
  for (const bad of [1e300, -1e300, 9.0000001e9, Infinity, Number.NaN]) {
    t.throws(() => w.write(bad, '', 1), { instanceOf: RangeError, message: /'elapsedTime'.*±9e\+?9/ });
  }
  w.write(-9e9, '', 1);
  w.write(0, '', 2);
  w.write(9e9, '', 3);
  t.is(w.entries, 3, 'the refused writes wrote nothing');
  w.close();
  const back = readAll(new ReadFile(`${prefix}.log`));
  t.deepEqual(
    back.map((m) => [m.elapsedTime, m.payload]),
    [
      [-9e9, 1],
      [0, 2],
      [9e9, 3],
    ],
  );
});

test('WriteFile splits by entries into Prefix_000.log, _001.log, … read back as one stream', (t) => {
  const dir = tempDir(t);
  const prefix = join(dir, 'Bar');
  const w = new WriteFile(prefix, { type: 'Bar', maxEntries: 2 });
  for (let i = 0; i < 5; i++) w.write(i * 0.1, '', { name: 'Bar', i });
  const files = w.close();
  t.deepEqual(files, [0, 1, 2].map((n) => `${prefix}_00${n}.log`));
  t.deepEqual(readdirSync(dir).sort(), ['Bar_000.log', 'Bar_001.log', 'Bar_002.log']);
  t.true(readFileSync(files[0]!, 'utf8').startsWith('#---'));
  t.false(readFileSync(files[1]!, 'utf8').includes('#'), 'only the first part has the header');
  const back = readAll(new ReadFile(prefix));
  t.deepEqual(
    back.map((m) => (m.payload as { i: number }).i),
    [0, 1, 2, 3, 4],
  );
  t.true(back.every((m) => m.type === 'Bar'));
});

test('record() writes what arrives per address into one directory with one time origin', async (t) => {
  const dir = tempDir(t);
  const recording = record(['A=udp://127.0.0.1:0', { url: 'udp://127.0.0.1:0', type: 'B' }], { root: dir });
  const [a, b] = recording.addresses.map((x) => Number(x.split(':')[1]));
  const socket = dgram.createSocket('udp4');
  t.teardown(() => socket.close());
  const send = (v: unknown, port: number) =>
    new Promise<void>((r, j) => socket.send(packr.pack(v), port, '127.0.0.1', (e) => (e ? j(e) : r())));
  await send(['', { name: 'A', n: 1 }], a!);
  await sleep(20); // apart by more than the log's 10 µs resolution
  await send(['x', { name: 'B', n: 2 }], b!);
  await sleep(20);
  await send(['', { name: 'A', n: 3 }], a!);
  await sleep(200);
  const summary = recording.stop();
  t.is(recording.stop(), summary, 'stop twice returns the same summary');
  t.is(summary.directory, recording.directory);
  t.regex(summary.directory, /\/\d{8}T\d{6}_[^/]+$/);
  t.deepEqual(summary.files.map((f) => f.slice(summary.directory.length + 1)).sort(), ['A.log', 'B.log']);
  t.is(summary.stats.messages, 3);
  const back = new ReadDirectory(summary.directory);
  t.deepEqual(back.messageTypes, ['A', 'B']);
  t.deepEqual(
    readAll(back).map((m) => [m.type, m.topic, (m.payload as { n: number }).n]),
    [
      ['A', '', 1],
      ['B', 'x', 2],
      ['A', '', 3],
    ],
  );
});

test('bad input: malformed URLs, unresolvable hosts, ports in use, bad options — clear errors', (t) => {
  t.throws(() => new Listener('http://127.0.0.1:1'), { message: /udp:\/\// });
  t.throws(() => new Listener('udp://127.0.0.1:notaport'), { message: /notaport|port/ });
  t.throws(() => new Listener([]), { instanceOf: TypeError });
  t.throws(() => new Replay(dataset, { udp: { destination: 'udp://no-such-host.invalid:26000' } }), {
    message: /no-such-host\.invalid/,
  });
  t.throws(() => new Replay(dataset, { udp: { destination: 'udp://127.0.0.1' + ':99999' } }), { message: /99999|port/ });
  t.throws(() => new Replay(dataset, { udp: {} }), { message: /destination/ });
  t.throws(() => new Replay(dataset, { udp: { destination: 'udp://127.0.0.1:9', mtu: 10 } }), { message: /mtu/ });
  const listener = new Listener('udp://127.0.0.1:0');
  t.teardown(() => listener.close());
  t.throws(() => new Listener(listener.urls[0]!), {
    instanceOf: NetworkError,
    message: new RegExp(`${listener.addresses[0]}|in use`),
  });
  t.throws(() => record('udp://127.0.0.1:0', {} as never), { instanceOf: TypeError });
  t.throws(() => new WriteFile(join(root, 'fixtures', 'nope', 'X')).write(0, '', 1), { message: /nope/ });
});

test('CLI: record + play --udp round trip, stopped with SIGINT, gives back the source', async (t) => {
  const dir = tempDir(t);
  const rec = spawn(
    process.execPath,
    ['--import=tsx', cli, 'record', 'UnitTestMessageA=udp://127.0.0.1:0', 'UnitTestMessageB=udp://127.0.0.1:0', '-o', dir],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => rec.kill('SIGKILL'));
  let stderr = '';
  rec.stderr.setEncoding('utf8');
  const exited = new Promise<number | null>((resolve) => rec.on('exit', (code) => resolve(code)));
  const ports = await new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`record did not start: ${stderr}`)), 30_000);
    rec.stderr.on('data', (chunk: string) => {
      stderr += chunk;
      const m = [...stderr.matchAll(/from udp:\/\/127\.0\.0\.1:(\d+)/g)].map((x) => x[1]!);
      if (m.length === 2) {
        clearTimeout(timer);
        resolve(m);
      }
    });
  });
  const play = spawnSync(
    process.execPath,
    [
      '--import=tsx',
      cli,
      'play',
      dataset,
      '--speed',
      '20',
      '--route',
      `UnitTestMessageA=udp://127.0.0.1:${ports[0]}`,
      '--route',
      `UnitTestMessageB=udp://127.0.0.1:${ports[1]}`,
      '--no-print',
    ],
    { cwd: root, encoding: 'utf8', timeout: 60_000 },
  );
  t.is(play.status, 0, play.stderr);
  t.is(play.stdout, '');
  t.regex(play.stderr, /udp: 20\/20 messages sent as 20 datagrams .*failures: none/);
  await sleep(300);
  rec.kill('SIGINT');
  t.is(await exited, 0, stderr);
  t.regex(stderr, /recorded 20 messages \(20 datagrams/);
  t.regex(stderr, /lost messages 0/);
  const [recorded] = readdirSync(dir);
  const back = readAll(new ReadDirectory(join(dir, recorded!)));
  const source = readAll(new ReadDirectory(dataset));
  t.deepEqual(
    back.map((m) => [m.topic, m.type, Buffer.from(m.payloadBytes!).toString('hex')]),
    source.map((m) => [m.topic, m.type, Buffer.from(m.payloadBytes!).toString('hex')]),
  );
  // Timing kept: recorded gaps follow the source's at speed 20.
  const span = back.at(-1)!.elapsedTime - back[0]!.elapsedTime;
  t.true(span > 0.03 && span < 0.5, `recorded span ${span} s`);
});

test('CLI: bad --udp and --route values are clear errors', (t) => {
  const run = (...args: string[]) =>
    spawnSync(process.execPath, ['--import=tsx', cli, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  // A host that does not resolve is a bad value of the flag: a usage error.
  const bad = run('play', dataset, '--udp', 'udp://no-such-host.invalid:1');
  t.is(bad.status, 2);
  t.regex(bad.stderr, /^netreplay: .*no-such-host\.invalid/);
  t.notRegex(bad.stderr, /\n\s+at /);
  t.is(run('play', dataset, '--route', 'nourl').status, 2);
  t.is(run('play', dataset, '--no-print').status, 2);
  const rec = run('record', 'udp://127.0.0.1:0');
  t.is(rec.status, 2);
  t.regex(rec.stderr, /-o <dir>/);
});
