import test from 'ava';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { ReadDirectory, ReadFile, LogAccessError, LogLayoutError, MalformedRecordError, type LoggedMessage } from '../src/index.js';
import { dataset, tempDir, writeLog, header } from './helpers.js';

function readAll(reader: { read(): LoggedMessage | null }): LoggedMessage[] {
  const out: LoggedMessage[] = [];
  for (let m = reader.read(); m !== null; m = reader.read()) out.push(m);
  return out;
}

const round = (x: number) => Math.round(x * 1e6) / 1e6;

test('ReadDirectory yields the 20 typed fixture messages in time order, raw skipped', (t) => {
  const reader = new ReadDirectory(dataset);
  const all = readAll(reader);
  t.is(all.length, 20);
  t.deepEqual(
    all.map((m) => round(m.elapsedTime)),
    [0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
  );
  t.deepEqual(all.map((m) => m.type), [...Array(10).fill('UnitTestMessageA'), ...Array(10).fill('UnitTestMessageB')]);
  for (const m of all) {
    t.is(m.topic, '');
    const p = m.payload as { timestamp: number; data: number; name: string };
    t.is(p.name, m.type!);
    t.is(round(p.timestamp), round(m.elapsedTime)); // MCL summed floats: 0.30000000000000004
    t.is(round(p.data), round(m.elapsedTime));
  }
  t.deepEqual(reader.messageTypes, ['UnitTestMessageA', 'UnitTestMessageB']);
  t.false(reader.isDataPending());
});

test('payload bytes are exactly the logged hex', (t) => {
  const reader = new ReadFile(join(dataset, 'UnitTestMessageA.log'));
  const lines = readFileSync(join(dataset, 'UnitTestMessageA.log'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('#'));
  const all = readAll(reader);
  t.is(all.length, 10);
  all.forEach((m, i) => t.is(Buffer.from(m.payloadBytes!).toString('hex'), lines[i]!.trim().split(/\s+/)[2]!));
});

test('raw streams are read on request', (t) => {
  const reader = new ReadDirectory(dataset, { includeRaw: true });
  const all = readAll(reader);
  t.is(all.length, 30);
  const raw = all.filter((m) => m.type === null);
  t.is(raw.length, 10);
  t.deepEqual(raw.map((m) => m.elapsedTime), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  t.true(Array.isArray(raw[0]!.payload));
  // Ties in time (A/B at 1.0 s vs raw at 1.0) keep file-name order: RawUnitTestData < UnitTestMessageB.
  const atOne = all.filter((m) => m.elapsedTime === 1);
  t.deepEqual(atOne.map((m) => m.type), [null, 'UnitTestMessageB']);
  t.true(reader.streams[0]!.header!.raw);
  t.is(reader.streams[0]!.header!.revision, '');
});

test('minTime / maxTime select an inclusive window', (t) => {
  const all = readAll(new ReadDirectory(dataset, { minTime: 0.05, maxTime: 0.3 }));
  t.deepEqual(all.map((m) => round(m.elapsedTime)), [0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.2, 0.3]);
  t.is(readAll(new ReadFile(join(dataset, 'UnitTestMessageB.log'), { minTime: 0.95 })).length, 1);
  t.throws(() => new ReadDirectory(dataset, { minTime: 2, maxTime: 1 }), { instanceOf: RangeError, message: /minTime/ });
  t.throws(() => new ReadDirectory(dataset, { minTime: Number.NaN }), { instanceOf: RangeError, message: /minTime/ });
  t.throws(() => new ReadDirectory(dataset, { maxTime: '1' as unknown as number }), { instanceOf: TypeError, message: /maxTime/ });
});

test('ReadFile parses the header', (t) => {
  const reader = new ReadFile(join(dataset, 'UnitTestMessageA.log'));
  t.deepEqual(reader.header, {
    version: '1.0',
    revision: 'ffff000000000000000000000000000000000000',
    created: '1970-01-01 00:00:00',
    messageType: 'UnitTestMessageA',
    raw: false,
  });
  t.is(readAll(reader).length, 10);
  reader.reset();
  t.true(reader.isDataPending());
  t.is(reader.read()!.elapsedTime, 0);
});

test('split sets read as one stream, by prefix and in a directory', (t) => {
  const dir = tempDir(t);
  writeLog(join(dir, 'Cam_000.log'), [{ t: 0, payload: 0 }, { t: 0.1, payload: 1 }], 'Cam');
  writeLog(join(dir, 'Cam_001.log'), [{ t: 0.2, payload: 2 }, { t: 0.3, payload: 3 }], undefined);
  writeLog(join(dir, 'Cam_002.log'), [{ t: 0.4, payload: 4 }], undefined);
  writeLog(join(dir, 'Imu.log'), [{ t: 0.15, payload: 'imu' }], 'Imu');
  const byPrefix = new ReadFile(join(dir, 'Cam'));
  t.deepEqual(readAll(byPrefix).map((m) => m.payload), [0, 1, 2, 3, 4]);
  t.is(byPrefix.header!.messageType, 'Cam');
  t.is(byPrefix.streams[0]!.files.length, 3);
  const merged = readAll(new ReadDirectory(dir));
  t.deepEqual(merged.map((m) => m.payload), [0, 1, 'imu', 2, 3, 4]);
  t.deepEqual(merged.map((m) => m.type), ['Cam', 'Cam', 'Imu', 'Cam', 'Cam', 'Cam']);
});

test('a header-less single file reads; in a directory it is an error naming it', (t) => {
  const dir = tempDir(t);
  const file = writeLog(join(dir, 'Plain.log'), [{ t: 0.5, topic: 'a', payload: { x: 1 } }], undefined);
  const reader = new ReadFile(file);
  t.is(reader.header, null);
  const [m] = readAll(reader);
  t.deepEqual(m, { elapsedTime: 0.5, topic: 'a', type: null, payload: { x: 1 }, payloadBytes: m!.payloadBytes });
  const err = t.throws(() => new ReadDirectory(dir), { instanceOf: LogLayoutError });
  t.regex(err.message, /Plain\.log.*no MCL header/);
});

test('ties keep file-name order then record order', (t) => {
  const dir = tempDir(t);
  writeLog(join(dir, 'B.log'), [{ t: 1, payload: 'b1' }, { t: 1, payload: 'b2' }, { t: 2, payload: 'b3' }], 'B');
  writeLog(join(dir, 'A.log'), [{ t: 1, payload: 'a1' }, { t: 2, payload: 'a2' }], 'A');
  writeLog(join(dir, 'C.log'), [{ t: 0.5, payload: 'c1' }, { t: 1, payload: 'c2' }], 'C');
  t.deepEqual(readAll(new ReadDirectory(dir)).map((m) => m.payload), ['c1', 'a1', 'b1', 'b2', 'c2', 'a2', 'b3']);
});

test('a malformed line is an error naming file, line and snippet; skip counts it', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'Bad.log');
  writeFileSync(file, header('Bad') + "     0.10000    ''          01\n     0.20000    ''          0z\n     0.30000    ''          03\n");
  const reader = new ReadFile(file);
  t.is(reader.read()!.payload, 1);
  const err = t.throws(() => reader.read(), { instanceOf: MalformedRecordError });
  t.is(err.path, file);
  t.is(err.line, 14);
  t.regex(err.snippet!, /0\.20000 +'' +0z/);
  t.regex(err.message, /Bad\.log:14: payload is not hex/);
  t.is(reader.read()!.payload, 3, 'reading goes on after the bad line');
  const skipping = new ReadFile(file, { onError: 'skip' });
  t.deepEqual(readAll(skipping).map((m) => m.payload), [1, 3]);
  t.is(skipping.skipped, 1);
  for (const bad of ["abc    ''    01", "0.1    ''", "0.1 'unterminated 01", "0.1 '' 012"]) {
    writeFileSync(file, `${bad}\n`);
    t.throws(() => new ReadFile(file).read(), { instanceOf: MalformedRecordError, message: /Bad\.log:1:/ }, bad);
  }
  t.throws(() => new ReadFile(file, { onError: 'ignore' as 'skip' }), { instanceOf: RangeError, message: /onError/ });
});

test('an empty file has no records', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'Empty.log');
  writeFileSync(file, '');
  const reader = new ReadFile(file);
  t.is(reader.read(), null);
  t.is(reader.header, null);
});

test('missing paths and inconsistent directories are clear errors', (t) => {
  const dir = tempDir(t);
  t.throws(() => new ReadFile(join(dir, 'nope.log')), { instanceOf: LogAccessError, message: /nope\.log/ });
  t.throws(() => new ReadDirectory(join(dir, 'nodir')), { instanceOf: LogAccessError, message: /nodir/ });
  t.throws(() => new ReadDirectory(dir), { instanceOf: LogLayoutError, message: /no MCL log files/ });
  writeLog(join(dir, 'A.log'), [{ t: 0, payload: 1 }], 'A', '2020-01-01 00:00:00');
  writeLog(join(dir, 'B.log'), [{ t: 0, payload: 1 }], 'B', '2021-01-01 00:00:00');
  t.throws(() => new ReadDirectory(dir), { instanceOf: LogLayoutError, message: /created '2021-01-01 00:00:00' differs/ });
  t.throws(() => new ReadFile(dir), { instanceOf: LogAccessError, message: /directory/ });
  t.throws(() => new ReadFile(42 as unknown as string), { instanceOf: TypeError, message: /path/ });
  t.throws(() => new ReadDirectory(dataset, { includeRaw: 'yes' as unknown as boolean }), { instanceOf: TypeError, message: /includeRaw/ });
});
