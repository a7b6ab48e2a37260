// The Foxglove bridge, tested with the protocol's own client (FoxgloveClient
// of @foxglove/ws-protocol over a `ws` WebSocket) against a real server on
// an ephemeral loopback port.
import test from 'ava';
import { join } from 'node:path';
import { connect as tcpConnect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Channel, IWebSocket, Parameter, ServerInfo, Service, StatusMessage } from '@foxglove/ws-protocol';
import { WebSocket } from 'ws';
import {
  FOXGLOVE_PARAMETERS as P,
  FOXGLOVE_SERVICES as S,
  Replay,
  parseFoxgloveAddress,
  serveFoxglove,
  type FoxgloveBridge,
  type Message,
} from '../src/index.js';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { McapWriter, TempBuffer } from '@mcap/core';
import { dataset, header, line, root, sleep, tempDir, writeLog } from './helpers.js';

// The package is CommonJS, its named exports invisible to ESM imports.
const { FoxgloveClient } = createRequire(import.meta.url)('@foxglove/ws-protocol') as typeof import('@foxglove/ws-protocol');

interface Received {
  channel: Channel;
  timestamp: bigint;
  payload: unknown;
  at: number;
}

/** A FoxgloveClient and everything it has received. */
class Client {
  readonly client: InstanceType<typeof FoxgloveClient>;
  readonly ws: WebSocket;
  serverInfo: ServerInfo | undefined;
  readonly channels = new Map<number, Channel>();
  readonly messages: Received[] = [];
  readonly times: bigint[] = [];
  readonly statuses: StatusMessage[] = [];
  readonly parameterUpdates: Parameter[][] = [];
  readonly services = new Map<string, Service>();
  readonly #calls = new Map<number, (answer: { ok: true; response: unknown } | { ok: false; message: string }) => void>();
  readonly #subscriptions = new Map<number, Channel>();
  readonly #replies = new Map<string, (p: Parameter[]) => void>();
  #nextId = 0;
  #waiters: (() => void)[] = [];

  constructor(url: string) {
    this.ws = new WebSocket(url, [FoxgloveClient.SUPPORTED_SUBPROTOCOL]);
    this.client = new FoxgloveClient({ ws: this.ws as unknown as IWebSocket });
    this.client.on('serverInfo', (info) => (this.serverInfo = info));
    this.client.on('advertise', (channels) => channels.forEach((c) => this.channels.set(c.id, c)));
    this.client.on('message', ({ subscriptionId, timestamp, data }) => {
      const channel = this.#subscriptions.get(subscriptionId)!;
      const bytes = new Uint8Array((data as DataView).buffer, (data as DataView).byteOffset, (data as DataView).byteLength);
      // json channels are parsed; others (cdr, protobuf) are kept as bytes.
      const payload = channel.encoding === 'json' ? JSON.parse(new TextDecoder().decode(bytes)) : Buffer.from(bytes);
      this.messages.push({ channel, timestamp, payload, at: performance.now() });
    });
    this.client.on('time', ({ timestamp }) => this.times.push(timestamp));
    this.client.on('status', (s) => this.statuses.push(s));
    this.client.on('parameterValues', ({ parameters, id }) => {
      const reply = id === undefined ? undefined : this.#replies.get(id);
      if (reply) {
        this.#replies.delete(id!);
        reply(parameters);
      } else this.parameterUpdates.push(parameters);
    });
    this.client.on('advertiseServices', (services) => services.forEach((sv) => this.services.set(sv.name, sv)));
    this.client.on('serviceCallResponse', ({ callId, data }) => {
      this.#calls.get(callId)?.({ ok: true, response: JSON.parse(new TextDecoder().decode(data as Uint8Array)) });
      this.#calls.delete(callId);
    });
    this.client.on('serviceCallFailure', ({ callId, message }) => {
      this.#calls.get(callId)?.({ ok: false, message });
      this.#calls.delete(callId);
    });
    this.client.on('advertise', () => this.#wake());
    this.client.on('message', () => this.#wake());
    this.client.on('serverInfo', () => this.#wake());
  }

  #wake() {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Resolves once `done()` holds (checked at each event), or rejects after `ms`. */
  async until(done: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
    const t0 = performance.now();
    while (!done()) {
      if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
      await Promise.race([new Promise<void>((r) => this.#waiters.push(r)), sleep(20)]);
    }
  }

  subscribeAll(): void {
    for (const channel of this.channels.values()) {
      if ([...this.#subscriptions.values()].includes(channel)) continue;
      this.#subscriptions.set(this.client.subscribe(channel.id), channel);
    }
  }

  get(names: string[] = []): Promise<Parameter[]> {
    const id = `get-${this.#nextId++}`;
    return new Promise((resolve) => {
      this.#replies.set(id, resolve);
      this.client.getParameters(names, id);
    });
  }

  set(parameters: Parameter[]): Promise<Parameter[]> {
    const id = `set-${this.#nextId++}`;
    return new Promise((resolve) => {
      this.#replies.set(id, resolve);
      this.client.setParameters(parameters, id);
    });
  }

  /** Call a service by name with a JSON request (or raw text). */
  call(name: string, request: unknown, encoding = 'json') {
    const service = this.services.get(name);
    if (!service) throw new Error(`no service ${name}; have ${[...this.services.keys()].join(', ')}`);
    const callId = this.#nextId++;
    const text = typeof request === 'string' ? request : JSON.stringify(request);
    return new Promise<{ ok: true; response: unknown } | { ok: false; message: string }>((resolve) => {
      this.#calls.set(callId, resolve);
      this.client.sendServiceCallRequest({ serviceId: service.id, callId, encoding, data: new TextEncoder().encode(text) });
    });
  }

  close(): void {
    this.client.close();
  }
}

const valueOf = (params: Parameter[], name: string) => params.find((p) => p.name === name)?.value;

async function open(t: { teardown(fn: () => void): void }, bridge: FoxgloveBridge): Promise<Client> {
  const client = new Client(bridge.url);
  t.teardown(() => client.close());
  await client.until(() => client.serverInfo !== undefined, 3000, 'serverInfo');
  return client;
}

/** 101 messages, one every 20 ms from 0 to 2 s, payload { i }. */
function tickLog(t: { teardown(fn: () => void): void }): string {
  const records = Array.from({ length: 101 }, (_, i) => ({ t: i * 0.02, topic: '/tick', payload: { name: 'Tick', i } }));
  return writeLog(join(tempDir(t), 'Tick.log'), records, 'Tick');
}

test('parseFoxgloveAddress: ws://127.0.0.1:8765 by default, and the forms of --control', (t) => {
  t.deepEqual(parseFoxgloveAddress(), { host: '127.0.0.1', port: 8765 });
  t.deepEqual(parseFoxgloveAddress(''), { host: '127.0.0.1', port: 8765 });
  t.deepEqual(parseFoxgloveAddress('ws://0.0.0.0:9000'), { host: '0.0.0.0', port: 9000 });
  t.deepEqual(parseFoxgloveAddress('ws://localhost'), { host: 'localhost', port: 8765 });
  t.deepEqual(parseFoxgloveAddress(':9001'), { host: '127.0.0.1', port: 9001 });
  t.deepEqual(parseFoxgloveAddress('9002'), { host: '127.0.0.1', port: 9002 });
  t.throws(() => parseFoxgloveAddress('http://127.0.0.1:8765'), { instanceOf: RangeError, message: /--foxglove: the scheme must be ws:\/\// });
  t.throws(() => parseFoxgloveAddress('ws://host:99999'), { instanceOf: RangeError, message: /the port must be 0\.\.65535/ });
});

test.serial('a client subscribes, gets the advertised channels and every message in order with its log time', async (t) => {
  const replay = new Replay(dataset);
  const direct: Message[] = [];
  replay.on('message', (m) => direct.push(m));
  const bridge = await serveFoxglove(replay, {
    port: 0,
    name: 'fixture',
    channels: [
      { type: 'UnitTestMessageA', topic: '' },
      { type: 'UnitTestMessageB', topic: '' },
    ],
  });
  t.teardown(() => replay.close());
  t.teardown(() => bridge.close());
  t.regex(bridge.url, /^ws:\/\/127\.0\.0\.1:\d+$/);
  const client = await open(t, bridge);
  t.is(client.serverInfo!.name, 'fixture');
  t.deepEqual([...client.serverInfo!.capabilities].sort(), ['parameters', 'parametersSubscribe', 'services', 'time']);
  t.deepEqual(client.serverInfo!.supportedEncodings, ['json']);
  await client.until(() => client.channels.size === 2, 3000, 'advertise');
  t.deepEqual(
    [...client.channels.values()].map(({ topic, encoding, schemaName, schemaEncoding }) => ({ topic, encoding, schemaName, schemaEncoding })),
    [
      { topic: '/UnitTestMessageA', encoding: 'json', schemaName: 'UnitTestMessageA', schemaEncoding: 'jsonschema' },
      { topic: '/UnitTestMessageB', encoding: 'json', schemaName: 'UnitTestMessageB', schemaEncoding: 'jsonschema' },
    ],
  );
  client.subscribeAll();
  // Requests are handled in order: once this answer is in, so are the subscriptions.
  await client.get();
  replay.start();
  await replay.done;
  await client.until(() => client.messages.length === 20, 3000, '20 messages');
  await sleep(100);
  t.is(client.messages.length, 20, 'each message once');
  t.is(direct.length, 20, 'the replay delivers to its other listeners as before');
  t.deepEqual(
    client.messages.map((m) => ({ topic: m.channel.topic, timestamp: m.timestamp, payload: m.payload })),
    direct.map((m) => ({
      topic: `/${m.type}`,
      timestamp: BigInt(Math.round(m.elapsedTime * 1e9)),
      payload: m.payload,
    })),
  );
  t.deepEqual(
    client.messages.slice(0, 3).map((m) => m.timestamp),
    [0n, 10_000_000n, 20_000_000n],
  );
  // The server's time follows the replay's logical time, never backwards in a plain run.
  t.true(client.times.length >= 10, `${client.times.length} time messages in 1 s`);
  for (let i = 1; i < client.times.length; i++) t.true(client.times[i]! >= client.times[i - 1]!);
  const last = client.messages.at(-1)!.timestamp;
  t.true(client.times.at(-1)! >= last - 50_000_000n, `time ${client.times.at(-1)} at the end, last message ${last}`);
  t.true(client.statuses.some((s) => s.level === 0 && /reached its end/.test(s.message)));
  t.like(bridge.stats(), { clients: 1, channels: 2, sent: 20, dropped: 0, clientErrors: 0, unencodable: 0 });
});

test.serial('parameters pause, seek and set the speed; the messages and the time show it', async (t) => {
  const replay = new Replay(tickLog(t));
  const direct: Message[] = [];
  replay.on('message', (m) => direct.push(m));
  const bridge = await serveFoxglove(replay, { port: 0, channels: [{ type: 'Tick', topic: '/tick' }] });
  t.teardown(() => replay.close());
  t.teardown(() => bridge.close());
  const client = await open(t, bridge);
  await client.until(() => client.channels.size === 1);
  client.subscribeAll();
  client.client.subscribeParameterUpdates(Object.values(P));
  let params = await client.get();
  t.deepEqual(
    params.map((p) => p.name),
    [P.paused, P.speed, P.position, P.state],
  );
  t.like(Object.fromEntries(params.map((p) => [p.name, p.value])), { [P.paused]: true, [P.speed]: 1, [P.state]: 'idle' });
  t.is(valueOf(params, P.position), undefined, 'no position before the first message');
  t.is(params.find((p) => p.name === P.speed)!.type, 'float64');
  t.deepEqual((await client.get([P.state])).map((p) => p.name), [P.state]);

  params = await client.set([{ name: P.paused, value: false }]);
  t.deepEqual(params.map((p) => [p.name, p.value]), [[P.paused, false]]);
  await sleep(300);
  params = await client.set([{ name: P.paused, value: true }]);
  t.is(valueOf(params, P.paused), true);
  t.is(replay.progress().state, 'paused');
  const atPause = client.messages.length;
  t.true(atPause >= 5 && atPause <= 40, `${atPause} messages in 0.3 s`);
  const timesAtPause = client.times.length;
  await sleep(250);
  t.is(client.messages.length, atPause, 'nothing comes while paused');
  t.true(client.times.length - timesAtPause <= 1, 'the time stands still while paused');

  // Seek while paused: still paused. (The engine reports no position after a
  // seek while paused until it plays on: null then, else the sought time.)
  params = await client.set([{ name: P.position, value: 1.5 }]);
  const sought = valueOf(params, P.position);
  t.true(sought === undefined || Math.abs((sought as number) - 1.5) < 1e-6, `position ${sought}`);
  t.is(replay.progress().state, 'paused');
  params = await client.set([{ name: P.speed, value: 4, type: 'float64' }]);
  t.is(valueOf(params, P.speed), 4);
  t.is(replay.speed, 4);

  const timesAtResume = client.times.length;
  await client.set([{ name: P.paused, value: false }]);
  await replay.done;
  await client.until(() => client.messages.length === atPause + 26, 3000, 'the rest of the log');
  const timesAfter = client.times.slice(timesAtResume);
  t.true(timesAfter.length > 0 && timesAfter.every((time) => time >= 1_500_000_000n), `times after the seek: ${timesAfter.join(', ')}`);
  const rest = client.messages.slice(atPause);
  t.deepEqual(rest.map((m) => (m.payload as { i: number }).i), Array.from({ length: 26 }, (_, k) => 75 + k));
  t.deepEqual(rest.map((m) => m.timestamp), Array.from({ length: 26 }, (_, k) => BigInt(Math.round((75 + k) * 0.02 * 1e9))));
  // The speed shows in the schedule of what the client got (the replay's deadlines: exact whatever the load).
  const scheduled = (direct.at(-1)!.deadline - direct.at(-26)!.deadline) / 1e9;
  t.deepEqual(direct.slice(-26).map((m) => (m.payload as { i: number }).i), Array.from({ length: 26 }, (_, k) => 75 + k));
  t.true(Math.abs(scheduled - 25 * 0.005) < 0.001, `25 gaps of 20 ms at speed 4 scheduled over ${scheduled} s`);

  // Speed as the string "Infinity"; bad values are refused with a status naming the parameter and value.
  params = await client.set([{ name: P.speed, value: 'Infinity' }]);
  t.is(valueOf(params, P.speed), 'Infinity');
  t.is(replay.speed, Infinity);
  client.statuses.length = 0;
  params = await client.set([
    { name: P.speed, value: -1 },
    { name: P.state, value: 'playing' },
    { name: 'netreplay.nope', value: 1 },
    { name: P.paused, value: 'yes' },
    { name: P.position, value: 'start' },
  ]);
  t.is(valueOf(params, P.speed), 'Infinity', 'the speed is unchanged');
  t.is(replay.speed, Infinity);
  const errors = client.statuses.filter((s) => s.level === 2).map((s) => s.message);
  t.is(errors.length, 5, errors.join('\n'));
  t.regex(errors[0]!, /cannot set netreplay\.speed to -1: 'netreplay\.speed' must be a number > 0 or "Infinity", got -1/);
  t.regex(errors[1]!, /cannot set netreplay\.state to "playing": it is read-only/);
  t.regex(errors[2]!, /cannot set netreplay\.nope to 1: no such parameter; parameters: netreplay\.paused/);
  t.regex(errors[3]!, /cannot set netreplay\.paused to "yes": it must be a boolean/);
  t.regex(errors[4]!, /cannot set netreplay\.position to "start": it must be a finite number of seconds/);

  // Changes made elsewhere (the API, the HTTP control) reach parameter subscribers unasked;
  // the position, while playing, at most once a second.
  replay.speed = 1;
  await sleep(100);
  client.parameterUpdates.length = 0;
  replay.start();
  await sleep(1500);
  const positions = client.parameterUpdates.flat().filter((p) => p.name === P.position);
  t.true(positions.length >= 1 && positions.length <= 3, `${positions.length} position updates in 1.5 s of playing`);
  replay.pause();
  replay.speed = 2;
  await client.until(() => client.parameterUpdates.flat().some((p) => p.name === P.speed && p.value === 2), 2000, 'a speed update');
  await sleep(100);
  const updates = client.parameterUpdates.flat();
  t.true(updates.some((p) => p.name === P.speed && p.value === 2));
  t.true(updates.some((p) => p.name === P.state && p.value === 'playing'));
  t.true(updates.some((p) => p.name === P.state && p.value === 'paused'));
  t.true(updates.some((p) => p.name === P.paused && p.value === true));
});

test.serial('services step, play until and stop; bad calls fail with a message', async (t) => {
  const replay = new Replay(tickLog(t), { startPaused: true });
  const bridge = await serveFoxglove(replay, { port: 0, channels: [{ type: 'Tick', topic: '/tick' }] });
  t.teardown(() => replay.close());
  t.teardown(() => bridge.close());
  const client = await open(t, bridge);
  await client.until(() => client.channels.size === 1 && client.services.size === 3, 3000, 'channels and services');
  const step = client.services.get(S.step)!;
  t.like(step, { type: 'netreplay/Step', request: { encoding: 'json', schemaEncoding: 'jsonschema' } });
  t.deepEqual(JSON.parse(step.request!.schema), { type: 'object', properties: { n: { type: 'integer', minimum: 1 } } });
  client.subscribeAll();
  await client.get();
  replay.start();

  let answer = await client.call(S.step, { n: 3 });
  t.deepEqual(answer, { ok: true, response: { state: 'paused', position: 0.04, delivered: 3 } });
  answer = await client.call(S.step, {});
  t.like(answer, { ok: true, response: { delivered: 4 } });
  await client.until(() => client.messages.length === 4, 2000, 'four stepped messages');
  t.deepEqual(client.messages.map((m) => (m.payload as { i: number }).i), [0, 1, 2, 3]);

  answer = await client.call(S.playUntil, { time: 0.5 });
  t.like(answer, { ok: true, response: { state: 'paused' } });
  await client.until(() => client.messages.length === 26, 2000, 'messages up to 0.5 s');
  t.is((client.messages.at(-1)!.payload as { i: number }).i, 25);

  for (const [name, request, message] of [
    [S.step, { n: 0 }, /\/netreplay\/step: 'n' must be an integer >= 1, got 0/],
    [S.step, { count: 2 }, /unknown field 'count'; it takes: n/],
    [S.step, '{"n": ', /the request is not JSON/],
    [S.step, [1], /the request must be a JSON object, got \[1\]/],
    [S.playUntil, {}, /\/netreplay\/play_until: 'time' must be a finite number of seconds, got undefined/],
    [S.stop, { now: true }, /unknown field 'now'; it takes none/],
  ] as const) {
    answer = await client.call(name, request);
    t.false(answer.ok);
    t.regex((answer as { message: string }).message, message);
  }
  answer = await client.call(S.step, { n: 1 }, 'cbor');
  t.regex((answer as { message: string }).message, /the request's encoding must be json, got "cbor"/);
  // A state error: a step while playing.
  replay.start();
  answer = await client.call(S.step, { n: 1 });
  t.false(answer.ok);
  t.regex((answer as { message: string }).message, /^\/netreplay\/step: step\(\) needs a paused replay/);

  answer = await client.call(S.stop, {});
  t.like(answer, { ok: true, response: { state: 'idle', delivered: 0 } });
  t.is(replay.progress().state, 'idle');
});

test.serial('channels appear with their first message: schema inferred, binary as base64, latched for late subscribers', async (t) => {
  const dir = tempDir(t);
  writeLog(join(dir, 'Blob.log'), [
    { t: 0, topic: '/cam', payload: { name: 'Blob', n: 1, data: Buffer.from([1, 2, 3]), tags: ['a'], big: 2n ** 60n } },
    { t: 0.1, topic: '/cam', payload: { name: 'Blob', n: 2, data: Buffer.from([4]), tags: [], big: 3n } },
  ], 'Blob');
  writeLog(join(dir, 'Other.log'), [{ t: 0.05, topic: '/cam', payload: { name: 'Other', ok: true } }], 'Other');
  writeLog(join(dir, 'Raw.log'), [{ t: 0.07, payload: 42 }], null);
  const replay = new Replay(dir, { startPaused: true, includeRaw: true });
  const bridge = await serveFoxglove(replay, { port: 0, timeOffset: 1_000_000_000_000n });
  t.teardown(() => replay.close());
  t.teardown(() => bridge.close());
  const client = await open(t, bridge);
  t.is(client.channels.size, 0);
  replay.start();
  await replay.step(1);
  await client.until(() => client.channels.size === 1, 3000, 'the first channel');
  const blob = [...client.channels.values()][0]!;
  t.like(blob, { topic: '/cam', schemaName: 'Blob', encoding: 'json' });
  t.deepEqual(JSON.parse(blob.schema), {
    type: 'object',
    properties: {
      name: { type: 'string' },
      n: { type: 'number' },
      data: { type: 'string', contentEncoding: 'base64' },
      tags: { type: 'array', items: { type: 'string' } },
      big: {},
    },
  });
  // Subscribed after the message went out: the latched copy comes at once.
  client.subscribeAll();
  await client.until(() => client.messages.length === 1, 3000, 'the latched message');
  t.deepEqual(client.messages[0]!.payload, { name: 'Blob', n: 1, data: 'AQID', tags: ['a'], big: '1152921504606846976' });
  t.is(client.messages[0]!.timestamp, 1_000_000_000_000n);

  await replay.step(3);
  await client.until(() => client.channels.size === 3, 3000, 'three channels');
  const topics = [...client.channels.values()].map((c) => [c.topic, c.schemaName]);
  t.deepEqual(topics, [['/cam', 'Blob'], ['/cam [Other]', 'Other'], ['/None', 'None']], 'a topic with two types gets two channels');
  client.subscribeAll();
  await client.until(() => client.messages.length === 4, 3000, 'latched and live messages');
  const payloads = client.messages.map((m) => [m.channel.topic, m.payload, m.timestamp]);
  t.deepEqual(payloads.slice(1).sort((a, b) => String(a[0]).localeCompare(String(b[0]))), [
    ['/cam', { name: 'Blob', n: 2, data: 'BA==', tags: [], big: 3 }, 1_000_100_000_000n],
    ['/cam [Other]', { name: 'Other', ok: true }, 1_000_050_000_000n],
    ['/None', { value: 42 }, 1_000_070_000_000n],
  ]);
});

/** A WebSocket client by hand over TCP: it subscribes, then stops reading. */
async function stalledClient(url: string, subscribe: object): Promise<Socket> {
  const { hostname, port } = new URL(url);
  const socket = tcpConnect(Number(port), hostname);
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  socket.write(
    `GET / HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
      `Sec-WebSocket-Protocol: foxglove.websocket.v1\r\n\r\n`,
  );
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  socket.write(maskedText(JSON.stringify(subscribe)));
  socket.pause();
  return socket;
}

function maskedText(text: string): Buffer {
  const payload = Buffer.from(text);
  if (payload.length > 125) throw new Error('short frames only');
  const mask = randomBytes(4);
  const frame = Buffer.alloc(6 + payload.length);
  frame[0] = 0x81;
  frame[1] = 0x80 | payload.length;
  mask.copy(frame, 2);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i]! ^ mask[i % 4]!;
  return frame;
}

test.serial('a client that stops reading loses frames, counted; the others get everything; misbehaving clients do no harm', async (t) => {
  // 500 messages of 32 KiB (43 KiB as JSON) in 3 s: more than the kernel and the
  // default 8 MiB bound hold for a client that does not read, easy for one that does.
  const records = Array.from({ length: 500 }, (_, i) => ({ t: i * 0.006, topic: '/big', payload: { name: 'Big', i, data: Buffer.alloc(32 * 1024, i) } }));
  const log = writeLog(join(tempDir(t), 'Big.log'), records, 'Big');
  const replay = new Replay(log);
  const bridge = await serveFoxglove(replay, { port: 0, channels: [{ type: 'Big', topic: '/big' }] });
  t.teardown(() => replay.close());
  t.teardown(() => bridge.close());
  const good = await open(t, bridge);
  await good.until(() => good.channels.size === 1);
  good.subscribeAll();
  await good.get();
  const stalled = await stalledClient(bridge.url, { op: 'subscribe', subscriptions: [{ id: 7, channelId: 1 }] });
  t.teardown(() => stalled.destroy());

  // Clients that send garbage, or vanish mid-stream.
  const rude = new WebSocket(bridge.url, ['foxglove.websocket.v1']);
  await new Promise((resolve) => rude.once('open', resolve));
  rude.send('not json');
  rude.send(Buffer.from([0xff, 1, 2]));
  rude.send(JSON.stringify({ op: 'subscribe', subscriptions: [{ id: 1, channelId: 99 }] }));
  rude.send(JSON.stringify({ op: 'nonsense' }));
  rude.send(JSON.stringify({ op: 'setParameters', parameters: 'all' }));
  const vanishing = new WebSocket(bridge.url, ['foxglove.websocket.v1']);
  await new Promise((resolve) => vanishing.once('open', resolve));
  vanishing.send(JSON.stringify({ op: 'subscribe', subscriptions: [{ id: 0, channelId: 1 }] }));
  await sleep(50);

  replay.start();
  await sleep(200);
  vanishing.terminate();
  await replay.done;
  await good.until(() => good.messages.length === 500, 5000, `all 500 messages to the reading client (got ${good.messages.length}; ${JSON.stringify(bridge.stats())})`);
  t.deepEqual(good.messages.map((m) => (m.payload as { i: number }).i), records.map((_, i) => i));
  t.is((good.messages[5]!.payload as { data: string }).data, Buffer.alloc(32 * 1024, 5).toString('base64'));
  const stats = bridge.stats();
  t.true(stats.dropped > 0, `dropped ${stats.dropped}`);
  t.true(stats.clientErrors >= 2, `client errors ${stats.clientErrors}`);
  t.true(stats.sent >= 500 + 1, `sent ${stats.sent}`);
  stalled.destroy();
  rude.terminate();
  await sleep(100);
  t.is(bridge.stats().clients, 1);
  // The server still answers.
  t.is((await good.get([P.state]))[0]!.value, 'ended');
});

test.serial('a client that lets even the answers pile up is disconnected; a frame larger than the bound still goes to a reading client', async (t) => {
  const records = Array.from({ length: 300 }, (_, i) => ({ t: i * 0.001, topic: '/big', payload: { name: 'Big', i, data: Buffer.alloc(32 * 1024, i) } }));
  const log = writeLog(join(tempDir(t), 'Big.log'), records, 'Big');
  const replay = new Replay(log, { startPaused: true });
  // 16 KiB: each message (43 KiB of JSON) is larger than the bound by itself.
  const bridge = await serveFoxglove(replay, { port: 0, maxBufferedBytes: 16 * 1024, channels: [{ type: 'Big', topic: '/big' }] });
  t.teardown(() => replay.close());
  t.teardown(() => bridge.close());
  const reader = await open(t, bridge);
  await reader.until(() => reader.channels.size === 1);
  reader.subscribeAll();
  await reader.get();
  replay.start();
  await replay.step(3);
  await reader.until(() => reader.messages.length === 3, 3000, 'three messages of 43 KiB through a 16 KiB bound');
  t.deepEqual(reader.messages.map((m) => (m.payload as { i: number }).i), [0, 1, 2]);
  reader.close();
  await sleep(50);

  // A client that stops reading fills the kernel's buffers with messages, then asks and asks.
  const stalled = await stalledClient(bridge.url, { op: 'subscribe', subscriptions: [{ id: 1, channelId: 1 }] });
  t.teardown(() => stalled.destroy());
  await sleep(50);
  replay.speed = Infinity;
  replay.start();
  await replay.done;
  t.is(bridge.stats().disconnected, 0);
  const ask = maskedText(JSON.stringify({ op: 'getParameters', parameterNames: [], id: 'x' }));
  for (let k = 0; k < 100 && bridge.stats().disconnected === 0; k++) {
    stalled.write(Buffer.concat(Array.from({ length: 50 }, () => ask)));
    await sleep(20);
  }
  const stats = bridge.stats();
  t.is(stats.disconnected, 1, JSON.stringify(stats));
  t.true(stats.dropped > 0);
  await sleep(50);
  t.is(bridge.stats().clients, 0);
});

test.serial('payloads: decoded by the bridge when the replay does not decode; one that does not decode is counted, and a replay error is a status', async (t) => {
  const dir = tempDir(t);
  const good = (seq: number, t: number) => line({ t, topic: 'x', payload: { name: 'Bad', seq } });
  // Well-formed msgpack (fixext 1, type 5) that msgpackr refuses to decode.
  const path = join(dir, 'Bad.log');
  writeFileSync(path, header('Bad') + good(0, 0) + good(1, 0.001) + `     0.00200    'x'         d40501\n` + good(3, 0.003));

  const raw = new Replay(path, { speed: Infinity, decode: false, rawPayload: true });
  const rawBridge = await serveFoxglove(raw, { port: 0, channels: [{ type: 'Bad', topic: 'x' }] });
  t.teardown(() => raw.close());
  t.teardown(() => rawBridge.close());
  const client = await open(t, rawBridge);
  await client.until(() => client.channels.size === 1);
  client.subscribeAll();
  await client.get();
  raw.start();
  await raw.done;
  await client.until(() => client.messages.length === 3, 3000, 'the three payloads that decode');
  t.deepEqual(client.messages.map((m) => (m.payload as { seq: number }).seq), [0, 1, 3]);
  t.like(rawBridge.stats(), { unencodable: 1, sent: 3 });

  const failing = new Replay(path, { speed: Infinity });
  const bridge = await serveFoxglove(failing, { port: 0 });
  t.teardown(() => failing.close());
  t.teardown(() => bridge.close());
  const watcher = await open(t, bridge);
  failing.start();
  await t.throwsAsync(failing.done);
  await watcher.until(() => watcher.statuses.some((s) => s.level === 2), 3000, 'an error status');
  t.regex(watcher.statuses.find((s) => s.level === 2)!.message, /^the replay failed: .*Unknown extension/);
});

test('options are checked; close() disconnects clients and frees the port', async (t) => {
  const replay = new Replay(dataset);
  t.teardown(() => replay.close());
  await t.throwsAsync(serveFoxglove(undefined as unknown as Replay), { instanceOf: TypeError, message: /serveFoxglove: 'replay' must be a Replay, got undefined/ });
  await t.throwsAsync(serveFoxglove(replay, { port: -1 }), { instanceOf: RangeError, message: /'port' must be an integer 0\.\.65535/ });
  await t.throwsAsync(serveFoxglove(replay, { timeOffset: 5 as unknown as bigint }), { instanceOf: TypeError, message: /'timeOffset' must be a bigint/ });
  await t.throwsAsync(serveFoxglove(replay, { timeRate: 0 }), { instanceOf: RangeError, message: /'timeRate'/ });
  await t.throwsAsync(serveFoxglove(replay, { maxBufferedBytes: 0 }), { instanceOf: RangeError, message: /'maxBufferedBytes'/ });
  await t.throwsAsync(serveFoxglove(replay, { channels: [{ type: 1 }] as never }), { instanceOf: TypeError, message: /'channels\[0\]' must be/ });
  await t.throwsAsync(serveFoxglove(replay, { lacth: true } as never), { instanceOf: TypeError, message: /unknown option 'lacth'.*did you mean 'latch'/ });
  const bridge = await serveFoxglove(replay, { port: 0 });
  await t.throwsAsync(serveFoxglove(replay, { port: Number(new URL(bridge.url).port) }), { code: 'EADDRINUSE' });
  const res = await fetch(bridge.url.replace('ws:', 'http:'));
  t.is(res.status, 426, 'plain HTTP is told to upgrade');
  const client = await open(t, bridge);
  const closed = new Promise((resolve) => client.ws.once('close', resolve));
  await bridge.close();
  await closed;
  await bridge.close();
  t.is(bridge.stats().clients, 0);
  const again = await serveFoxglove(replay, { port: Number(new URL(bridge.url).port) });
  await again.close();
  t.pass();
});

test('importing netreplay loads neither ws nor @foxglove/ws-protocol; serveFoxglove does', (t) => {
  // In a process of its own: this file has loaded both already.
  const script = `
    import { createRequire } from 'node:module';
    const Module = createRequire(import.meta.url)('node:module');
    const loaded = () => Object.keys(Module._cache).filter((k) => /node_modules\\/(ws|@foxglove\\/ws-protocol)\\//.test(k)).length;
    const { Replay, serveFoxglove } = await import(${JSON.stringify(join(root, 'src', 'index.ts'))});
    const before = loaded();
    const replay = new Replay(${JSON.stringify(dataset)});
    const bridge = await serveFoxglove(replay, { port: 0 });
    console.log(JSON.stringify({ before, after: loaded() }));
    await bridge.close();
    replay.close();
  `;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
  const { before, after } = JSON.parse(out.trim().split('\n').at(-1)!) as { before: number; after: number };
  t.is(before, 0);
  t.true(after > 0, `${after} modules of ws and @foxglove/ws-protocol after serveFoxglove`);
});

test.serial('MCAP channels of encodings Foxglove decodes (cdr, protobuf) go as they are, with their schema; json ones as json', async (t) => {
  const path = join(tempDir(t), 'ros.mcap');
  const buffer = new TempBuffer();
  const writer = new McapWriter({ writable: buffer });
  await writer.start({ profile: 'ros2', library: 'test' });
  const enc = new TextEncoder();
  const imuSchema = await writer.registerSchema({ name: 'sensor_msgs/msg/Imu', encoding: 'ros2msg', data: enc.encode('float64 x\nfloat64 y') });
  const protoSchema = await writer.registerSchema({ name: 'pkg.Pose', encoding: 'protobuf', data: new Uint8Array([10, 3, 1, 2, 255]) });
  const imu = await writer.registerChannel({ topic: '/imu', schemaId: imuSchema, messageEncoding: 'cdr', metadata: new Map() });
  const pose = await writer.registerChannel({ topic: '/pose', schemaId: protoSchema, messageEncoding: 'protobuf', metadata: new Map() });
  const note = await writer.registerChannel({ topic: '/note', schemaId: 0, messageEncoding: 'json', metadata: new Map() });
  const cdr = (i: number) => new Uint8Array([0, 1, 0, 0, i, 0, 0, 0]);
  for (let i = 0; i < 5; i++) {
    const at = 1_700_000_000_000_000_000n + BigInt(i) * 20_000_000n;
    await writer.addMessage({ channelId: imu, sequence: i, logTime: at, publishTime: at, data: cdr(i) });
    await writer.addMessage({ channelId: pose, sequence: i, logTime: at + 1n, publishTime: at, data: new Uint8Array([8, i]) });
    await writer.addMessage({ channelId: note, sequence: i, logTime: at + 2n, publishTime: at, data: enc.encode(JSON.stringify({ i })) });
  }
  await writer.end();
  writeFileSync(path, buffer.get());

  const replay = new Replay(path, { startPaused: true });
  const bridge = await serveFoxglove(replay, { port: 0 });
  t.teardown(() => replay.close());
  t.teardown(() => bridge.close());
  const client = await open(t, bridge);
  replay.start();
  replay.step(3);
  await client.until(() => client.channels.size === 3, 3000, 'three channels');
  t.deepEqual(
    [...client.channels.values()].map(({ topic, encoding, schemaName, schemaEncoding, schema }) => ({ topic, encoding, schemaName, schemaEncoding, schema })),
    [
      { topic: '/imu', encoding: 'cdr', schemaName: 'sensor_msgs/msg/Imu', schemaEncoding: 'ros2msg', schema: 'float64 x\nfloat64 y' },
      { topic: '/pose', encoding: 'protobuf', schemaName: 'pkg.Pose', schemaEncoding: 'protobuf', schema: Buffer.from([10, 3, 1, 2, 255]).toString('base64') },
      { topic: '/note', encoding: 'json', schemaName: 'None', schemaEncoding: 'jsonschema', schema: JSON.stringify({ type: 'object', properties: { i: { type: 'number' } } }) },
    ],
  );
  client.subscribeAll();
  await client.get();
  replay.start(); // resume
  await replay.done;
  // The three stepped before the subscription come latched, then the 12 others.
  await client.until(() => client.messages.length === 15, 3000, '15 messages');
  const got = (topic: string) => client.messages.filter((m) => m.channel.topic === topic).map((m) => m.payload);
  t.deepEqual(got('/imu'), [0, 1, 2, 3, 4].map((i) => Buffer.from(cdr(i))));
  t.deepEqual(got('/pose'), [0, 1, 2, 3, 4].map((i) => Buffer.from([8, i])));
  t.deepEqual(got('/note'), [0, 1, 2, 3, 4].map((i) => ({ i })));
  t.like(bridge.stats(), { unencodable: 0 });
});
