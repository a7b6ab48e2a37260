// The HTTP control API, driven with fetch against a real server on an
// ephemeral loopback port: what it does shows in the messages delivered.
import test from 'ava';
import { join } from 'node:path';
import { connect, createServer } from 'node:net';
import { Replay, parseControlAddress, serveControl, type ControlServer, type Message } from '../src/index.js';
import { sleep, tempDir, writeLog } from './helpers.js';

/** 101 messages, one every 20 ms from 0 to 2 s, payload { i }. */
function tickLog(t: { teardown(fn: () => void): void }): string {
  const records = Array.from({ length: 101 }, (_, i) => ({ t: i * 0.02, topic: '/tick', payload: { i, name: 'Tick' } }));
  return writeLog(join(tempDir(t), 'Tick.log'), records, 'Tick');
}

async function call(server: ControlServer, method: string, path: string, body?: unknown, headers?: Record<string, string>) {
  const res = await fetch(server.url + path, {
    method,
    headers: { ...(body !== undefined && { 'Content-Type': 'application/json' }), ...headers },
    ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

test('parseControlAddress takes http://HOST:PORT, HOST:PORT, :PORT and PORT, loopback by default', (t) => {
  t.deepEqual(parseControlAddress('http://127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
  t.deepEqual(parseControlAddress('http://0.0.0.0:8080/'), { host: '0.0.0.0', port: 8080 });
  t.deepEqual(parseControlAddress('localhost:9000'), { host: 'localhost', port: 9000 });
  t.deepEqual(parseControlAddress(':9000'), { host: '127.0.0.1', port: 9000 });
  t.deepEqual(parseControlAddress('9000'), { host: '127.0.0.1', port: 9000 });
  t.deepEqual(parseControlAddress('[::1]:9000'), { host: '::1', port: 9000 });
  t.deepEqual(parseControlAddress('http://[::]:0'), { host: '::', port: 0 });
  for (const [bad, why] of [
    ['ws://127.0.0.1:80', /--control: the scheme must be http:\/\//],
    ['127.0.0.1', /a port is needed/],
    ['http://host:70000', /the port must be 0\.\.65535 \('70000'\)/],
    ['host:abc', /the port must be/],
    ['http://host:80/path', /a path is not allowed/],
    ['::1:80', /IPv6 address must be in brackets/],
    ['[::1', /closing '\]'/],
    ['', /a port is needed/],
  ] as const) {
    const err = t.throws(() => parseControlAddress(bad), { instanceOf: RangeError });
    t.regex(err!.message, why);
    t.true(err!.message.includes(JSON.stringify(bad)), err!.message);
  }
  t.throws(() => parseControlAddress(8080 as unknown as string), { instanceOf: TypeError, message: /--control must be a string, got number/ });
});

test.serial('pause, seek, step, speed, resume and stop through the API show in the messages delivered and in status', async (t) => {
  const replay = new Replay(tickLog(t));
  const messages: { m: Message; at: number }[] = [];
  replay.on('message', (m) => messages.push({ m, at: performance.now() }));
  const server = await serveControl(replay);
  t.teardown(() => replay.close());
  t.teardown(() => server.close());
  t.regex(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);

  let r = await call(server, 'GET', '/status');
  t.is(r.status, 200);
  t.regex(r.headers.get('content-type')!, /^application\/json/);
  t.like(r.body, { state: 'idle', delivered: 0, speed: 1, udp: null, stats: { delivered: 0 } });

  r = await call(server, 'POST', '/resume');
  t.like(r.body, { changed: true, status: { state: 'playing' } });
  await sleep(300);
  r = await call(server, 'POST', '/pause');
  t.like(r.body, { changed: true, status: { state: 'paused' } });
  const atPause = messages.length;
  t.true(atPause >= 5 && atPause <= 40, `${atPause} messages in 0.3 s`);
  await sleep(250);
  t.is(messages.length, atPause, 'nothing is delivered while paused');
  r = await call(server, 'GET', '/status');
  t.like(r.body, { state: 'paused', delivered: atPause });
  t.is(r.body.stats.delivered, atPause);
  t.true(Math.abs(r.body.position - messages.at(-1)!.m.elapsedTime) < 0.021, `position ${r.body.position}`);
  r = await call(server, 'POST', '/pause');
  t.like(r.body, { changed: false, status: { state: 'paused' } });

  // Seek while paused stays paused; step delivers exactly n from there.
  r = await call(server, 'POST', '/seek', { time: 1.5 });
  t.like(r.body, { changed: true, status: { state: 'paused' } });
  // (The position is the sought record's once the producer has it: null until then.)
  const sought = r.body.status.position;
  t.true(sought === null || Math.abs(sought - 1.5) < 1e-6, `position ${sought}`);
  const beforeStep = messages.length;
  r = await call(server, 'POST', '/step', { n: 3 });
  t.like(r.body, { status: { state: 'paused' } });
  t.deepEqual(
    messages.slice(beforeStep).map(({ m }) => m.payload),
    [{ i: 75, name: 'Tick' }, { i: 76, name: 'Tick' }, { i: 77, name: 'Tick' }],
  );
  r = await call(server, 'POST', '/step', {});
  t.deepEqual(messages.slice(beforeStep + 3).map(({ m }) => (m.payload as { i: number }).i), [78], 'n defaults to 1');
  t.like(r.body, { status: { state: 'paused', position: 1.56 } });

  // Speed 4, then resume: the rest (1.58 s to 2.0 s of log) comes 5 ms apart.
  r = await call(server, 'POST', '/speed', { speed: 4 });
  t.like(r.body, { status: { speed: 4 } });
  t.is(replay.speed, 4);
  const beforeResume = messages.length;
  r = await call(server, 'POST', '/resume');
  t.like(r.body, { changed: true, status: { state: 'playing' } });
  await replay.done;
  const rest = messages.slice(beforeResume);
  t.deepEqual(rest.map(({ m }) => (m.payload as { i: number }).i), Array.from({ length: 22 }, (_, k) => 79 + k));
  // The speed shows in the schedule (deadlines: exact, whatever the machine's load) and in the arrivals.
  const scheduled = (rest.at(-1)!.m.deadline - rest[0]!.m.deadline) / 1e9;
  t.true(Math.abs(scheduled - 21 * 0.005) < 0.001, `21 gaps of 20 ms at speed 4 scheduled over ${scheduled} s`);
  const arrived = (rest.at(-1)!.at - rest[0]!.at) / 1000;
  t.true(arrived < 0.3, `and arrived within ${arrived} s (0.42 s at speed 1)`);
  r = await call(server, 'GET', '/status');
  t.like(r.body, { state: 'ended' });

  // Infinity goes as a string both ways (JSON has no Infinity).
  r = await call(server, 'POST', '/speed', { speed: 'Infinity' });
  t.is(r.status, 200);
  t.is(r.body.status.speed, 'Infinity');
  t.is(replay.speed, Infinity);
  const beforeReplay = messages.length;
  r = await call(server, 'POST', '/resume');
  t.true(r.body.changed, 'resume after the end plays again');
  await replay.done;
  t.is(messages.length - beforeReplay, 101);

  r = await call(server, 'POST', '/resume');
  r = await call(server, 'POST', '/stop');
  t.like(r.body, { status: { state: 'idle' } });
});

test.serial('bad requests get clear JSON errors, and the server goes on', async (t) => {
  const replay = new Replay(tickLog(t), { startPaused: true });
  const server = await serveControl(replay, { port: 0 });
  t.teardown(() => replay.close());
  t.teardown(() => server.close());

  const head = await fetch(server.url + '/status', { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(await head.text(), '');
  // A request that is not HTTP gets a 400 and the server goes on.
  const raw = await new Promise<string>((resolve, reject) => {
    const { hostname, port } = new URL(server.url);
    const socket = connect(Number(port), hostname, () => socket.end('NONSENSE\r\n\r\n'));
    let text = '';
    socket.on('data', (d) => (text += d.toString()));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
  t.regex(raw, /^HTTP\/1\.1 400 Bad Request/);

  let r = await call(server, 'GET', '/nope');
  t.is(r.status, 404);
  t.regex(r.body.error, /no route "\/nope"; routes: \/status, \/pause/);
  r = await call(server, 'GET', '/pause');
  t.is(r.status, 405);
  t.is(r.headers.get('allow'), 'POST');
  t.regex(r.body.error, /\/pause takes POST, not GET/);
  r = await call(server, 'POST', '/status');
  t.is(r.status, 405);
  t.is(r.headers.get('allow'), 'GET, HEAD');
  r = await call(server, 'POST', '/seek', '{"time": ');
  t.is(r.status, 400);
  t.regex(r.body.error, /^the body is not JSON: /);
  r = await call(server, 'POST', '/seek', [1]);
  t.regex(r.body.error, /the body must be a JSON object, got \[1\]/);
  r = await call(server, 'POST', '/seek', { time: 'soon' });
  t.is(r.status, 400);
  t.deepEqual(r.body, { error: `'time' must be a finite number of seconds (log time), got "soon"`, field: 'time' });
  r = await call(server, 'POST', '/seek', {});
  t.regex(r.body.error, /'time' must be a finite number of seconds \(log time\), got nothing/);
  r = await call(server, 'POST', '/seek', { time: 1, speed: 2 });
  t.deepEqual(r.body, { error: `unknown field 'speed' for /seek; it takes: time`, field: 'speed' });
  r = await call(server, 'POST', '/pause', { now: true });
  t.regex(r.body.error, /unknown field 'now' for \/pause; it takes no fields/);
  for (const speed of [0, -1, null, '2']) {
    r = await call(server, 'POST', '/speed', { speed });
    t.is(r.status, 400);
    t.true(r.body.error.startsWith(`'speed' must be a number > 0 or "Infinity", got ${speed === '2' ? '"2"' : speed}`), r.body.error);
  }
  t.is(replay.speed, 1);
  for (const n of [0, 1.5, 'two']) {
    r = await call(server, 'POST', '/step', { n });
    t.is(r.status, 400);
    t.regex(r.body.error, /'n' must be an integer >= 1, got /);
  }
  r = await call(server, 'POST', '/seek', 'x'.repeat(70_000));
  t.is(r.status, 413);
  r = await call(server, 'POST', '/pause', undefined, { Origin: 'http://evil.example' });
  t.is(r.status, 403);
  t.regex(r.body.error, /requests from web pages \(Origin: http:\/\/evil\.example\) are refused/);

  // A state error is a 409: step while playing.
  r = await call(server, 'POST', '/resume');
  t.like(r.body, { status: { state: 'paused' } }, 'startPaused: resume leaves it paused on the first message');
  r = await call(server, 'POST', '/resume');
  t.like(r.body, { status: { state: 'playing' } });
  r = await call(server, 'POST', '/step', { n: 1 });
  t.is(r.status, 409);
  t.regex(r.body.error, /step/i);
  replay.close();
  r = await call(server, 'GET', '/status');
  t.like(r.body, { state: 'closed' });
  r = await call(server, 'POST', '/pause');
  t.is(r.status, 409);
  t.regex(r.body.error, /this replay is closed/);
});

test('options are checked; a port in use is an error; close() ends kept-alive connections', async (t) => {
  const replay = new Replay(tickLog(t));
  t.teardown(() => replay.close());
  await t.throwsAsync(serveControl({} as Replay), { instanceOf: TypeError, message: /serveControl: 'replay' must be a Replay, got object/ });
  await t.throwsAsync(serveControl(replay, { port: 70000 }), { instanceOf: RangeError, message: /'port' must be an integer 0\.\.65535/ });
  await t.throwsAsync(serveControl(replay, { host: 7 as unknown as string }), { instanceOf: TypeError, message: /'host' must be a non-empty string/ });
  await t.throwsAsync(serveControl(replay, { prot: 1 } as never), { instanceOf: TypeError, message: /unknown option 'prot'.*did you mean 'port'/ });
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as { port: number }).port;
  await t.throwsAsync(serveControl(replay, { port }), { code: 'EADDRINUSE' });
  blocker.close();

  const server = await serveControl(replay);
  t.is((await call(server, 'GET', '/status')).status, 200);
  const t0 = performance.now();
  await server.close();
  t.true(performance.now() - t0 < 1000, 'close does not wait for keep-alive connections');
  await server.close();
  await t.throwsAsync(fetch(server.url + '/status'));
});
