// MCAP through the TS API: files written by @mcap/core (an independent
// writer) read by ReadMcap, ReadFile and Replay; files netreplay writes
// (convert, record) read back by @mcap/core's reader.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { McapIndexedReader, McapStreamReader, McapWriter, TempBuffer } from '@mcap/core';
import * as zstd from '@foxglove/wasm-zstd';
import lz4Decompress from '@foxglove/wasm-lz4';
import * as lz4js from 'lz4js';
import { Packr } from 'msgpackr';
import {
  convert,
  LogAccessError,
  MalformedRecordError,
  ReadDirectory,
  ReadFile,
  ReadMcap,
  record,
  Replay,
  type LoggedMessage,
  type Message,
} from '../src/index.js';
import { dataset, root, sleep, tempDir } from './helpers.js';

const packr = new Packr({ useRecords: false });
const cli = join(root, 'src', 'cli.ts');
/** Epoch ns beyond 2^53: a Number would lose them. */
const T0 = 1_700_000_000_123_456_789n;

type Compression = 'none' | 'lz4' | 'zstd';

type ChunkCompressor = ((data: Uint8Array) => { compression: string; compressedData: Uint8Array }) | undefined;

function compressor(kind: Compression): ChunkCompressor {
  if (kind === 'none') return undefined;
  if (kind === 'lz4') return (data) => ({ compression: 'lz4', compressedData: lz4js.compress(data) });
  return (data) => ({ compression: 'zstd', compressedData: zstd.compress(data, 3) });
}

const decompressHandlers = {
  lz4: (buffer: Uint8Array, size: bigint) => lz4Decompress(buffer, Number(size)),
  zstd: (buffer: Uint8Array, size: bigint) => zstd.decompress(buffer, Number(size)),
};

interface Written {
  topic: string;
  logTime: bigint;
  /** What the payload decodes to (undefined: bytes, not decoded). */
  value?: unknown;
  data: Uint8Array;
  type: string | null;
  encoding: string;
}

/**
 * An MCAP file as @mcap/core writes it: a msgpack channel, a JSON channel,
 * a CDR channel with a ros2msg schema, and a schemaless channel; the first
 * two with equal log times. `summary: false` writes no summary (no index,
 * no statistics), `cut` drops the end (a writer that crashed).
 */
async function writeReference(
  path: string,
  options: { compression: Compression; summary: boolean; chunkSize?: number; n?: number },
): Promise<Written[]> {
  await zstd.isLoaded;
  const buffer = new TempBuffer();
  const summary = options.summary;
  const writer = new McapWriter({
    writable: buffer,
    useChunks: true,
    chunkSize: options.chunkSize ?? 4096,
    compressChunk: compressor(options.compression),
    useStatistics: summary,
    useSummaryOffsets: summary,
    useChunkIndex: summary,
    useMessageIndex: summary,
    useMetadataIndex: summary,
    useAttachmentIndex: summary,
    repeatSchemas: summary,
    repeatChannels: summary,
  });
  await writer.start({ profile: '', library: 'netreplay test' });
  const encoder = new TextEncoder();
  const pose = await writer.registerSchema({ name: 'Pose', encoding: 'jsonschema', data: encoder.encode('{"type":"object"}') });
  const state = await writer.registerSchema({ name: 'State', encoding: '', data: new Uint8Array() });
  const imu = await writer.registerSchema({ name: 'sensor_msgs/msg/Imu', encoding: 'ros2msg', data: encoder.encode('float64 x') });
  const channels = {
    state: await writer.registerChannel({ topic: '/state', schemaId: state, messageEncoding: 'msgpack', metadata: new Map() }),
    pose: await writer.registerChannel({ topic: '/pose', schemaId: pose, messageEncoding: 'json', metadata: new Map() }),
    imu: await writer.registerChannel({ topic: '/imu', schemaId: imu, messageEncoding: 'cdr', metadata: new Map() }),
    raw: await writer.registerChannel({ topic: '/raw', schemaId: 0, messageEncoding: 'application/octet-stream', metadata: new Map() }),
  };
  const written: Written[] = [];
  const n = options.n ?? 60;
  for (let i = 0; i < n; i++) {
    const logTime = T0 + BigInt(i) * 10_000_000n + 1n; // 10 ms apart, odd ns
    // /state and /pose at equal log times: /state (channel id lower) first.
    const stateValue = { i, name: 'state', v: [i, i / 2] };
    const poseValue = { i, x: i * 0.5 };
    const msgs: [number, Written][] = [
      [channels.state, { topic: '/state', logTime, value: stateValue, data: packr.pack(stateValue), type: 'State', encoding: 'msgpack' }],
      [channels.pose, { topic: '/pose', logTime, value: poseValue, data: encoder.encode(JSON.stringify(poseValue)), type: 'Pose', encoding: 'json' }],
    ];
    if (i % 3 === 0) {
      const cdr = new Uint8Array([0, 1, 0, 0, i & 0xff, 1, 2, 3]);
      msgs.push([channels.imu, { topic: '/imu', logTime: logTime + 5_000_000n, data: cdr, type: 'sensor_msgs/msg/Imu', encoding: 'cdr' }]);
    }
    if (i % 5 === 0) {
      msgs.push([channels.raw, { topic: '/raw', logTime: logTime + 7_000_000n, data: new Uint8Array([i, 255 - i]), type: null, encoding: 'application/octet-stream' }]);
    }
    for (const [channelId, w] of msgs) {
      await writer.addMessage({ channelId, sequence: i, logTime: w.logTime, publishTime: w.logTime - 1000n, data: w.data });
      written.push(w);
    }
  }
  await writer.end();
  writeFileSync(path, buffer.get());
  // Time order, ties by channel id (then file order): as netreplay reads.
  const order = ['/state', '/pose', '/imu', '/raw'];
  return written.sort((a, b) => (a.logTime === b.logTime ? order.indexOf(a.topic) - order.indexOf(b.topic) : a.logTime < b.logTime ? -1 : 1));
}

function readAll<M extends LoggedMessage>(reader: { read(): M | null }): M[] {
  const out: M[] = [];
  for (let m = reader.read(); m !== null; m = reader.read()) out.push(m);
  return out;
}

function checkMessages(t: { is: Function; deepEqual: Function }, got: LoggedMessage[], want: Written[]): void {
  t.is(got.length, want.length, 'message count');
  const first = want[0]!.logTime;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    const where = `message ${i} (${w.topic} at ${w.logTime})`;
    t.is(g.topic, w.topic, where);
    t.is(g.type, w.type, where);
    t.is(g.timeNs, w.logTime, `${where}: timeNs exact`);
    t.is(g.elapsedTime, Number(w.logTime - first) / 1e9, `${where}: elapsed from the first message`);
    t.is(g.encoding, w.encoding, where);
    t.deepEqual(Buffer.from(g.payloadBytes!), Buffer.from(w.data), `${where}: bytes untouched`);
    if (w.value !== undefined) t.deepEqual(g.payload, w.value, `${where}: decoded`);
    else t.deepEqual(Buffer.from(g.payload as Uint8Array), Buffer.from(w.data), `${where}: given as bytes`);
  }
}

for (const compression of ['none', 'lz4', 'zstd'] as const) {
  for (const summary of [true, false]) {
    test(`@mcap/core's file (${compression}, ${summary ? 'with' : 'without'} summary): ReadMcap gives every message, decoded by encoding, exact times, ties by channel`, async (t) => {
      const path = join(tempDir(t), `ref-${compression}.mcap`);
      const want = await writeReference(path, { compression, summary });
      const reader = new ReadMcap(path);
      checkMessages(t, readAll(reader), want);
      t.deepEqual(
        reader.streams.map((s) => [s.type, s.encoding, s.schema?.name ?? null, s.schema?.encoding ?? null, s.timeBaseNs]),
        [
          ['State', 'msgpack', 'State', '', T0 + 1n],
          ['Pose', 'json', 'Pose', 'jsonschema', T0 + 1n],
          ['sensor_msgs/msg/Imu', 'cdr', 'sensor_msgs/msg/Imu', 'ros2msg', T0 + 1n],
          [null, 'application/octet-stream', null, null, T0 + 1n],
        ],
      );
      t.is(Buffer.from(reader.streams[2]!.schema!.data).toString(), 'float64 x', 'the schema data, for decoding CDR');
      reader.reset();
      t.is(readAll(reader).length, want.length, 'reset reads it all again');
    });
  }
}

test('ReadFile and openLog read MCAP by content, whatever the name; topics and the time window push down', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'named-like-a.log');
  const want = await writeReference(path, { compression: 'zstd', summary: true });
  checkMessages(t, readAll(new ReadFile(path)), want);
  const first = want[0]!.logTime;
  const inWindow = (w: Written) => w.logTime - first >= 100_000_000n && w.logTime - first <= 300_000_000n;
  const windowed = readAll(new ReadMcap(path, { minTime: 0.1, maxTime: 0.3, topics: ['/imu', '/state'] }));
  t.deepEqual(
    windowed.map((m) => [m.topic, m.timeNs]),
    want.filter((w) => (w.topic === '/imu' || w.topic === '/state') && inWindow(w)).map((w) => [w.topic, w.logTime]),
  );
  t.throws(() => new ReadMcap(path, { topics: '/imu' as never }), { instanceOf: TypeError, message: /'topics' must be an array/ });
  t.throws(() => new ReadMcap([]), { instanceOf: TypeError, message: /non-empty array/ });
  t.throws(() => new ReadFile(path, { topics: ['/x'] } as never), { instanceOf: TypeError, message: /topics/ });
});

test('several MCAP files merge by absolute log time; a Replay delivers timeNs and decoded payloads', async (t) => {
  const dir = tempDir(t);
  const a = join(dir, 'a.mcap');
  const want = await writeReference(a, { compression: 'lz4', summary: true, n: 30 });
  // b: one message between a's first two, 1 ms later than a's first.
  const b = join(dir, 'b.mcap');
  const buffer = new TempBuffer();
  const writer = new McapWriter({ writable: buffer });
  await writer.start({ profile: '', library: 'test' });
  const ch = await writer.registerChannel({ topic: '/b', schemaId: 0, messageEncoding: 'json', metadata: new Map() });
  await writer.addMessage({ channelId: ch, sequence: 0, logTime: T0 + 1_000_001n, publishTime: 0n, data: new TextEncoder().encode('{"b":1}') });
  await writer.end();
  writeFileSync(b, buffer.get());
  const merged = readAll(new ReadMcap([a, b]));
  t.is(merged.length, want.length + 1);
  t.deepEqual(merged.slice(0, 3).map((m) => [m.topic, m.timeNs]), [
    ['/state', T0 + 1n],
    ['/pose', T0 + 1n],
    ['/b', T0 + 1_000_001n],
  ]);
  t.is(merged[2]!.elapsedTime, 0.001);

  const replay = new Replay([a, b], { speed: Infinity });
  t.teardown(() => replay.close());
  const got: Message[] = [];
  replay.on('message', (m) => got.push(m));
  replay.start();
  await replay.done;
  t.deepEqual(
    got.map((m) => [m.topic, m.timeNs, m.encoding]),
    merged.map((m) => [m.topic, m.timeNs, m.encoding]),
  );
  t.deepEqual(got[0]!.payload, { i: 0, name: 'state', v: [0, 0] });
  t.deepEqual(got[1]!.payload, { i: 0, x: 0 });
  t.deepEqual(got[2]!.payload, { b: 1 });
  t.true(got.find((m) => m.topic === '/imu')!.payload instanceof Uint8Array, 'CDR is handed over as bytes');
});

test('a JSON payload that does not parse: an error naming the encoding, or skipped and counted', async (t) => {
  const path = join(tempDir(t), 'bad-json.mcap');
  const buffer = new TempBuffer();
  const writer = new McapWriter({ writable: buffer });
  await writer.start({ profile: '', library: 'test' });
  const ch = await writer.registerChannel({ topic: '/j', schemaId: 0, messageEncoding: 'json', metadata: new Map() });
  const enc = new TextEncoder();
  for (const [i, text] of ['{"a":1}', '{not json', '{"a":3}'].entries()) {
    await writer.addMessage({ channelId: ch, sequence: i, logTime: T0 + BigInt(i) * 1000n, publishTime: 0n, data: enc.encode(text) });
  }
  await writer.end();
  writeFileSync(path, buffer.get());
  const reader = new ReadMcap(path);
  t.deepEqual(reader.read()?.payload, { a: 1 });
  t.throws(() => reader.read(), { instanceOf: MalformedRecordError, message: /at 0\.000001 s .*topic "\/j".*does not decode as json/ });
  t.deepEqual(reader.read()?.payload, { a: 3 }, 'reading goes on after the error');
  const skipping = new ReadMcap(path, { onError: 'skip' });
  t.deepEqual(readAll(skipping).map((m) => m.payload), [{ a: 1 }, { a: 3 }]);
  t.is(skipping.skipped, 1);
  const fail = new Replay(path, { speed: Infinity });
  const seen: unknown[] = [];
  fail.on('message', (m) => seen.push(m.payload));
  const error = await new Promise<Error>((resolve) => {
    fail.on('error', resolve);
    fail.start();
  });
  fail.close();
  t.true(error instanceof MalformedRecordError);
  t.regex(error.message, /does not decode as json/);
  t.deepEqual(seen, [{ a: 1 }]);
  const skip = new Replay(path, { speed: Infinity, onError: 'skip' });
  const kept: unknown[] = [];
  skip.on('message', (m) => kept.push(m.payload));
  skip.start();
  await skip.done;
  skip.close();
  t.deepEqual(kept, [{ a: 1 }, { a: 3 }]);
});

test('a damaged MCAP: an error naming the file and the byte offset; with skip, what is whole is read', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'whole.mcap');
  const want = await writeReference(path, { compression: 'none', summary: false, chunkSize: 1024 });
  const bytes = readFileSync(path);
  const cut = join(dir, 'cut.mcap');
  writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
  const reader = new ReadMcap(cut);
  const got: LoggedMessage[] = [];
  const error = t.throws(() => {
    for (let m = reader.read(); m !== null; m = reader.read()) got.push(m);
  });
  t.true(error instanceof MalformedRecordError || error instanceof LogAccessError, String(error));
  t.regex(error!.message, /cut\.mcap/);
  t.regex(error!.message, /offset \d+|byte \d+/);
  t.true(got.length > 0 && got.length < want.length, `${got.length} of ${want.length} read before the damage`);
  const skipping = new ReadMcap(cut, { onError: 'skip' });
  t.is(readAll(skipping).length, got.length);
  t.true(skipping.skipped >= 1);
  const notMcap = join(dir, 'not.mcap');
  writeFileSync(notMcap, 'hello');
  t.throws(() => new ReadMcap(notMcap), { message: /not\.mcap.*not an MCAP file/ });
});

/** Every message of an MCAP file as @mcap/core's indexed reader reads it. */
async function readWithMcapCore(path: string): Promise<{ topic: string; schema: string | null; encoding: string; logTime: bigint; data: Buffer }[]> {
  await zstd.isLoaded;
  await lz4Decompress.isLoaded;
  const handle = await open(path, 'r');
  try {
    const readable = {
      size: async () => BigInt((await handle.stat()).size),
      read: async (offset: bigint, size: bigint) => {
        const out = Buffer.alloc(Number(size));
        await handle.read(out, 0, out.length, Number(offset));
        return out;
      },
    };
    const reader = await McapIndexedReader.Initialize({ readable, decompressHandlers });
    const out = [];
    for await (const m of reader.readMessages()) {
      const channel = reader.channelsById.get(m.channelId)!;
      out.push({
        topic: channel.topic,
        schema: reader.schemasById.get(channel.schemaId)?.name ?? null,
        encoding: channel.messageEncoding,
        logTime: m.logTime,
        data: Buffer.from(m.data),
      });
    }
    return out;
  } finally {
    await handle.close();
  }
}

for (const compression of ['zstd', 'lz4', 'none'] as const) {
  test(`convert MCL → MCAP (${compression}): @mcap/core reads every message, type, topic, bytes and time; back to MCL gives the same records and header`, async (t) => {
    const dir = tempDir(t);
    const out = join(dir, 'dataset.mcap');
    const summary = await convert(dataset, out, { compression, chunkSize: 512 });
    t.deepEqual(summary, { messages: 30, files: [out], skipped: 0 });
    const source = readAll(new ReadDirectory(dataset, { includeRaw: true }));
    const theirs = await readWithMcapCore(out);
    t.deepEqual(
      theirs.map((m) => [m.topic, m.schema, m.encoding, m.logTime, m.data.toString('hex')]),
      source.map((m) => [m.topic, m.type, 'msgpack', BigInt(Math.round(m.elapsedTime * 1e9)), Buffer.from(m.payloadBytes!).toString('hex')]),
    );
    const back = join(dir, 'back');
    await convert(out, back);
    // Every record line comes back as it was. Files are named by type (the
    // raw stream's RawUnitTestData.log comes back as None.log); the header
    // fields are the first stream's, its comment lines in MCL's current style.
    const records = (path: string) => readFileSync(path, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    for (const [mine, theirs] of [['UnitTestMessageA.log', 'UnitTestMessageA.log'], ['UnitTestMessageB.log', 'UnitTestMessageB.log'], ['None.log', 'RawUnitTestData.log']]) {
      t.deepEqual(records(join(back, mine!)), records(join(dataset, theirs!)), `${theirs}: its records`);
    }
    const one = join(dir, 'a.mcap');
    await convert(join(dataset, 'UnitTestMessageA.log'), one, { compression });
    await convert(one, join(dir, 'a.log'));
    t.deepEqual(new ReadFile(join(dir, 'a.log')).header, new ReadFile(join(dataset, 'UnitTestMessageA.log')).header, 'one file: its header fields');
    t.deepEqual(records(join(dir, 'a.log')), records(join(dataset, 'UnitTestMessageA.log')));
  });
}

test('convert: bad arguments and unconvertible input are clear errors', async (t) => {
  const dir = tempDir(t);
  await t.throwsAsync(convert(dataset, join(dir, 'x.mcap'), { compression: 'brotli' as never }), { message: /compression.*'brotli'/ });
  await t.throwsAsync(convert(dataset, join(dir, 'x.mcap'), { chunkSize: 0 }), { message: /chunkSize/ });
  await t.throwsAsync(convert(dataset, join(dir, 'x.mcap'), { colour: 1 } as never), { instanceOf: TypeError, message: /colour/ });
  await t.throwsAsync(convert(dataset, join(dir, 'x.log')), { message: /\.mcap/ });
  await t.throwsAsync(convert(join(dir, 'none.log'), join(dir, 'x.mcap')), { instanceOf: LogAccessError, message: /none\.log/ });
  const cdr = join(dir, 'cdr.mcap');
  await writeReference(cdr, { compression: 'none', summary: true, n: 3 });
  await t.throwsAsync(convert(cdr, join(dir, 'cdr-back')), { message: /json|cdr|msgpack/ });
});

test('record({ format: "mcap" }): what arrives is in one MCAP file @mcap/core reads, receive times as log times', async (t) => {
  const dir = tempDir(t);
  const started = BigInt(Date.now()) * 1_000_000n;
  const recording = record(['A=udp://127.0.0.1:0', 'B=udp://127.0.0.1:0'], { directory: join(dir, 'rec'), format: 'mcap', compression: 'lz4' });
  const [a, b] = recording.addresses.map((x) => Number(x.split(':')[1]));
  const socket = dgram.createSocket('udp4');
  t.teardown(() => socket.close());
  const send = (v: unknown, port: number) =>
    new Promise<void>((r, j) => socket.send(packr.pack(v), port, '127.0.0.1', (e) => (e ? j(e) : r())));
  await send(['/a', { n: 1 }], a!);
  await sleep(20);
  await send(['/b', { n: 2 }], b!);
  await sleep(20);
  await send(['/a', { n: 3 }], a!);
  await sleep(200);
  const summary = recording.stop();
  t.deepEqual(summary.files, [join(dir, 'rec', 'recording.mcap')]);
  const theirs = await readWithMcapCore(summary.files[0]!);
  t.deepEqual(
    theirs.map((m) => [m.topic, m.schema, m.encoding, packr.unpack(m.data)]),
    [
      ['/a', 'A', 'msgpack', { n: 1 }],
      ['/b', 'B', 'msgpack', { n: 2 }],
      ['/a', 'A', 'msgpack', { n: 3 }],
    ],
  );
  const ended = BigInt(Date.now()) * 1_000_000n;
  t.true(theirs.every((m) => m.logTime >= started - 1_000_000_000n && m.logTime <= ended), 'log times are receive times (epoch ns)');
  t.true(theirs[1]!.logTime - theirs[0]!.logTime >= 15_000_000n, 'the gaps are kept');
  const ours = readAll(new ReadMcap(summary.files[0]!));
  t.deepEqual(ours.map((m) => [m.type, m.topic, m.payload, m.timeNs]), theirs.map((m) => [m.schema, m.topic, packr.unpack(m.data), m.logTime]));
  t.throws(() => record('udp://127.0.0.1:0', { directory: join(dir, 'x'), compression: 'lz4' }), { message: /compression.*'mcap'/ });
  t.throws(() => record('udp://127.0.0.1:0', { directory: join(dir, 'y'), format: 'csv' as never }), { message: /format.*'csv'/ });
});

test('CLI: record --format mcap then play of it reproduces what was sent; a kill keeps the finished chunks', async (t) => {
  const dir = tempDir(t);
  const rec = spawn(process.execPath, ['--import=tsx', cli, 'record', 'UnitTestMessageA=udp://127.0.0.1:0', '-o', dir, '--format', 'mcap', '--compression', 'none'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => rec.kill('SIGKILL'));
  let stderr = '';
  rec.stderr.setEncoding('utf8');
  const exited = new Promise<number | null>((resolve) => rec.on('exit', (code) => resolve(code)));
  const port = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`record did not start: ${stderr}`)), 60_000);
    rec.stderr.on('data', (chunk: string) => {
      stderr += chunk;
      const m = /from udp:\/\/127\.0\.0\.1:(\d+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
  });
  const source = readAll(new ReadFile(join(dataset, 'UnitTestMessageA.log')));
  const replay = new Replay(join(dataset, 'UnitTestMessageA.log'), { speed: 10, udp: { destination: `udp://127.0.0.1:${port}` }, decode: false });
  replay.start();
  await replay.done;
  replay.close();
  await sleep(1500); // past the recorder's idle flush (1 s): the chunk is on disk
  const [recorded] = readdirSync(dir);
  const path = join(dir, recorded!, 'recording.mcap');
  // Killed: no summary, but every finished chunk reads.
  const killedCopy = join(dir, 'killed.mcap');
  writeFileSync(killedCopy, readFileSync(path));
  const fromKilled = readAll(new ReadMcap(killedCopy, { onError: 'skip' }));
  t.deepEqual(fromKilled.map((m) => m.payload), source.map((m) => m.payload), 'a copy taken before the stop (as a kill leaves it) reads');
  rec.kill('SIGINT');
  t.is(await exited, 0, stderr);
  t.regex(stderr, /recorded 10 messages/);
  const played = await new Promise<string>((resolve) => {
    const child = spawn(process.execPath, ['--import=tsx', cli, 'play', path, '--speed', 'inf', '--json'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('close', () => resolve(out));
  });
  const rows = played.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; payload: unknown; timeNs: string; encoding: string });
  t.deepEqual(rows.map((r) => r.payload), source.map((m) => m.payload));
  t.true(rows.every((r) => r.type === 'UnitTestMessageA' && r.encoding === 'msgpack' && /^\d{19}$/.test(r.timeNs)));
});

test('McapStreamReader (no index) reads what netreplay writes, record by record', async (t) => {
  const out = join(tempDir(t), 'stream.mcap');
  await convert(dataset, out, { compression: 'zstd' });
  await zstd.isLoaded;
  const reader = new McapStreamReader({ decompressHandlers });
  reader.append(readFileSync(out));
  const ops: string[] = [];
  for (let r = reader.nextRecord(); r; r = reader.nextRecord()) ops.push(r.type);
  t.true(reader.done(), 'the whole file parses, to the footer and magic');
  t.is(ops.filter((o) => o === 'Message').length, 30);
  t.true(ops.includes('ChunkIndex') && ops.includes('Statistics') && ops.includes('Metadata'));
});

test('CLI: info and play read an MCAP file from another writer; convert exits 2 on bad flags', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'ref.mcap');
  const want = await writeReference(path, { compression: 'zstd', summary: true, n: 10 });
  const run = (...args: string[]) => spawnSync(process.execPath, ['--import=tsx', cli, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  const info = run('info', path);
  t.is(info.status, 0, info.stderr);
  t.regex(info.stdout, /streams:\s+State \(1 file\), Pose \[json\] \(1 file\), sensor_msgs\/msg\/Imu \[cdr\] \(1 file\), None \[application\/octet-stream\] \(1 file\)/);
  t.regex(info.stdout, /start:\s+2023-11-14T22:13:20\.123456790Z \(1700000000123456790 ns since the epoch\)/);
  t.regex(info.stdout, new RegExp(`messages:\\s+${want.length}\\b`));
  const json = JSON.parse(run('info', path, '--json').stdout) as { streams: { encoding: string; timeBaseNs: string }[] };
  t.deepEqual(json.streams.map((s) => [s.encoding, s.timeBaseNs]), [
    ['msgpack', '1700000000123456790'],
    ['json', '1700000000123456790'],
    ['cdr', '1700000000123456790'],
    ['application/octet-stream', '1700000000123456790'],
  ]);
  const play = run('play', path, '--speed', 'inf', '--json', '--topics', '/pose', '/imu');
  t.is(play.status, 0, play.stderr);
  const rows = play.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { topic: string; timeNs: string; payload: unknown; encoding: string });
  const picked = want.filter((w) => w.topic === '/pose' || w.topic === '/imu');
  t.deepEqual(
    rows.map((r) => [r.topic, r.timeNs, r.encoding, r.payload]),
    picked.map((w) => [w.topic, String(w.logTime), w.encoding, w.value ?? Buffer.from(w.data).toString('hex')]),
  );
  for (const [flag, value, message] of [
    ['--compression', 'brotli', /--compression must be 'zstd', 'lz4' or 'none', got 'brotli'/],
    ['--chunk-size', '0', /--chunk-size must be a whole number >= 1, got '0'/],
    ['--on-error', 'ignore', /--on-error must be 'fail' or 'skip', got 'ignore'/],
  ] as const) {
    const bad = run('convert', dataset, join(dir, 'x.mcap'), flag, value);
    t.is(bad.status, 2, `${flag} ${value}`);
    t.regex(bad.stderr, message);
  }
  const one = run('convert', dataset);
  t.is(one.status, 2);
  t.regex(one.stderr, /convert needs <input> and <output>, got 1 path/);
  const cdr = run('convert', path, join(dir, 'back'));
  t.is(cdr.status, 1);
  t.regex(cdr.stderr, /encoded 'json'|encoded 'cdr'/);
  const recBad = run('record', 'udp://127.0.0.1:0', '-o', dir, '--compression', 'lz4');
  t.is(recBad.status, 2);
  t.regex(recBad.stderr, /--compression applies to --format mcap only/);
});

test('an MCAP reader merged with a reader written in JS: json and cdr payloads keep their values', async (t) => {
  const path = join(tempDir(t), 'ref.mcap');
  const want = await writeReference(path, { compression: 'none', summary: true, n: 6 });
  let given = false;
  const jsReader = {
    read: () => (given ? null : ((given = true), { elapsedTime: 0.0001, topic: '/js', type: 'Js', payload: { js: true } })),
    isDataPending: () => !given,
    reset: () => void (given = false),
  };
  const replay = new Replay([new ReadMcap(path), jsReader], { speed: Infinity });
  t.teardown(() => replay.close());
  const got: Message[] = [];
  replay.on('message', (m) => got.push(m));
  replay.start();
  await replay.done;
  t.is(got.length, want.length + 1);
  t.deepEqual(got.find((m) => m.topic === '/js')!.payload, { js: true });
  t.deepEqual(got.find((m) => m.topic === '/pose')!.payload, { i: 0, x: 0 });
  t.deepEqual(Buffer.from(got.find((m) => m.topic === '/imu')!.payload as Uint8Array), Buffer.from(want.find((w) => w.topic === '/imu')!.data));
});

test("timestamp: 'publish' plays by publish time, reordered; the CLI's --timestamp too", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'latency.mcap');
  const buffer = new TempBuffer();
  const writer = new McapWriter({ writable: buffer, chunkSize: 256 });
  await writer.start({ profile: '', library: 'test' });
  const slow = await writer.registerChannel({ topic: '/slow', schemaId: 0, messageEncoding: 'json', metadata: new Map() });
  const fast = await writer.registerChannel({ topic: '/fast', schemaId: 0, messageEncoding: 'json', metadata: new Map() });
  const enc = new TextEncoder();
  // Logged 1 ms apart, alternating; /slow was published 5 ms before it was logged.
  const sent: { topic: string; publish: bigint; i: number }[] = [];
  for (let i = 0; i < 40; i++) {
    const logTime = T0 + BigInt(i) * 1_000_000n;
    const topic = i % 2 === 0 ? '/slow' : '/fast';
    const publish = topic === '/slow' ? logTime - 5_000_000n : logTime;
    await writer.addMessage({ channelId: topic === '/slow' ? slow : fast, sequence: i, logTime, publishTime: publish, data: enc.encode(JSON.stringify({ i })) });
    sent.push({ topic, publish, i });
  }
  await writer.end();
  writeFileSync(path, buffer.get());
  // Equal publish times go by channel id: /slow's is the lower.
  const channelOrder = (s: { topic: string }) => (s.topic === '/slow' ? 0 : 1);
  const byPublish = [...sent].sort((a, b) => (a.publish === b.publish ? channelOrder(a) - channelOrder(b) : a.publish < b.publish ? -1 : 1));
  const got = readAll(new ReadMcap(path, { timestamp: 'publish' }));
  t.deepEqual(got.map((m) => [m.topic, m.timeNs, (m.payload as { i: number }).i]), byPublish.map((s) => [s.topic, s.publish, s.i]));
  t.is(got[0]!.elapsedTime, 0, 'elapsed from the first publish time');
  t.deepEqual(readAll(new ReadMcap(path)).map((m) => (m.payload as { i: number }).i), sent.map((s) => s.i), 'by log time: as written');

  const replay = new Replay(path, { speed: Infinity, timestamp: 'publish' });
  t.teardown(() => replay.close());
  const delivered: number[] = [];
  replay.on('message', (m) => delivered.push((m.payload as { i: number }).i));
  replay.start();
  await replay.done;
  t.deepEqual(delivered, byPublish.map((s) => s.i));
  t.throws(() => new Replay(dataset, { timestamp: 'publish' }), { instanceOf: TypeError, message: /'timestamp' applies to MCAP/ });
  t.throws(() => new ReadMcap(path, { timestamp: 'sent' as never }), { instanceOf: TypeError, message: /'timestamp' must be 'log' or 'publish', got "sent"/ });

  const run = (...args: string[]) => spawnSync(process.execPath, ['--import=tsx', cli, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  const play = run('play', path, '--speed', 'inf', '--json', '--timestamp', 'publish');
  t.is(play.status, 0, play.stderr);
  t.deepEqual(
    play.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { payload: { i: number } }).payload.i),
    byPublish.map((s) => s.i),
  );
  const bad = run('play', path, '--timestamp', 'sent');
  t.is(bad.status, 2);
  t.regex(bad.stderr, /--timestamp must be 'log' or 'publish', got 'sent'/);
  const notMcap = run('play', dataset, '--timestamp', 'publish');
  t.is(notMcap.status, 2);
  t.regex(notMcap.stderr, /--timestamp applies to MCAP/);
});
