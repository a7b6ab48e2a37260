// A Replay served live over the Foxglove WebSocket protocol
// (foxglove.websocket.v1), with the FoxgloveServer of @foxglove/ws-protocol
// over `ws`, so Foxglove and Lichtblick can show it. The bridge only
// listens to the replay's events and calls its public methods.
//
// - One channel per (type, topic), advertised when its first message comes
//   (or up front, with `channels`), encoding `json` with a JSON Schema
//   inferred from its first message: Foxglove and Lichtblick decode json,
//   protobuf, flatbuffer, ros1 and cdr channels, not msgpack. MCAP channels
//   of those encodings go as they are, with their own schema.
// - Timestamps: the message's reported time (`elapsedTime`, continued across
//   loops with `continuousTime`) in ns, plus `timeOffset`. The `time`
//   capability broadcasts the logical time (progress().time, which moves
//   with the clock between messages) so the player's clock follows the
//   replay, through sparse stretches, pauses and seeks.
// - Control through the `parameters` capability (pause, speed, seek: see
//   PARAMETERS) and the `services` one (step, play until, stop: see
//   SERVICES); the protocol has no playback control in this library's version.
// - Each client's socket is bounded (`maxBufferedBytes`): message and time
//   frames a client cannot take are dropped and counted; a client that
//   stops reading altogether is disconnected.
import { createServer, type Server as HttpServer } from 'node:http';
import { createRequire } from 'node:module';
import type { Channel, FoxgloveServer as FoxgloveServerType, IWebSocket, Parameter } from '@foxglove/ws-protocol';
import type { WebSocket as WsSocket, WebSocketServer as WsServer } from 'ws';
import { checkListenOptions, listen, parseListenAddress, speedFromJson, urlOf, type ListenAddress } from './listen.js';
import { decodePayload, type Message } from './message.js';
import { Replay, type Progress } from './replay.js';
import type { LogStream } from './reader.js';
import { checkOptions, checkPositiveInteger } from './validate.js';

/** The Foxglove WebSocket protocol's usual port. */
export const FOXGLOVE_DEFAULT_PORT = 8765;

export interface FoxgloveOptions {
  /** Address to bind (default 127.0.0.1: loopback only). */
  host?: string;
  /** Port (default 8765; 0: any free port, see `url`). */
  port?: number;
  /** The server's name, shown by the client (default 'netreplay'). */
  name?: string;
  /**
   * Channels to advertise before their first message, so that a client
   * can subscribe before it comes. Others are advertised as they appear.
   */
  channels?: readonly { type: string | null; topic: string }[];
  /** Nanoseconds added to every timestamp (default 0n: log time from the epoch). */
  timeOffset?: bigint;
  /** Time messages per second while the replay plays (default 30). */
  timeRate?: number;
  /**
   * Bytes a client's socket may hold unsent before its message and time
   * frames are dropped (default 8 MiB; a socket with nothing unsent takes
   * one frame of any size). Other frames (JSON answers) are never dropped:
   * a client that lets them pile up to 4 times this is disconnected.
   */
  maxBufferedBytes?: number;
  /**
   * A subscription first gets its channel's last message (default true),
   * as a latched topic: what a channel's first message was advertised with
   * reaches clients that subscribe after it.
   */
  latch?: boolean;
}

export interface FoxgloveStats {
  /** Clients connected now. */
  clients: number;
  /** Channels advertised. */
  channels: number;
  /** Message frames sent (one per message and subscribed client). */
  sent: number;
  /** Message and time frames dropped because a client's socket was full. */
  dropped: number;
  /** Clients disconnected because they stopped reading. */
  disconnected: number;
  /** Client requests that the server could not parse or refused (reported to that client). */
  clientErrors: number;
  /** Messages that could not be sent as JSON (a payload that does not decode or encode). */
  unencodable: number;
}

export interface FoxgloveBridge {
  /** Where it listens, `ws://HOST:PORT`. */
  readonly url: string;
  stats(): FoxgloveStats;
  /** Disconnect every client and stop listening. */
  close(): Promise<void>;
}

/**
 * The parameters a client can get and set (the Parameters panel of Foxglove
 * and Lichtblick shows and edits them).
 */
export const PARAMETERS = {
  /** Boolean: true pauses, false plays (starts an idle replay, replays an ended one). */
  paused: 'netreplay.paused',
  /** Number > 0, or the string "Infinity" (as fast as possible). */
  speed: 'netreplay.speed',
  /** Seconds of log time in the current pass: setting it seeks. */
  position: 'netreplay.position',
  /** Read-only: idle, playing, delayed, paused, ended or closed. */
  state: 'netreplay.state',
} as const;

/**
 * The services a client can call (json requests and responses; the Service
 * Call panel): the actions that are not a value to set.
 */
export const SERVICES = {
  /** `{ "n": 1 }` (n defaults to 1): `step(n)` while paused; answers once they are out. */
  step: '/netreplay/step',
  /** `{ "time": s }`: `playUntil(time)` (reported time); answers once paused there or at the end. */
  playUntil: '/netreplay/play_until',
  /** `{}`: `stop()`, which rewinds to the first message. */
  stop: '/netreplay/stop',
} as const;

/** What every service answers: where the replay is after the call. */
interface ServiceResponse {
  state: Progress['state'];
  position: number | null;
  delivered: number;
}

const SERVICE_SCHEMAS: Record<string, { request: object; type: string }> = {
  [SERVICES.step]: { type: 'netreplay/Step', request: { type: 'object', properties: { n: { type: 'integer', minimum: 1 } } } },
  [SERVICES.playUntil]: {
    type: 'netreplay/PlayUntil',
    request: { type: 'object', properties: { time: { type: 'number' } }, required: ['time'] },
  },
  [SERVICES.stop]: { type: 'netreplay/Stop', request: { type: 'object', properties: {} } },
};

const RESPONSE_SCHEMA = {
  type: 'object',
  properties: { state: { type: 'string' }, position: { type: ['number', 'null'] }, delivered: { type: 'number' } },
};

/** The value of `--foxglove`: `ws://HOST:PORT`, `HOST:PORT`, `:PORT` or `PORT`; default ws://127.0.0.1:8765. */
export function parseFoxgloveAddress(text?: string): ListenAddress {
  return parseListenAddress(text ?? '', 'ws', '--foxglove', FOXGLOVE_DEFAULT_PORT);
}

const OPTION_NAMES = ['host', 'port', 'name', 'channels', 'timeOffset', 'timeRate', 'maxBufferedBytes', 'latch'];
/** Frames opcodes (first byte) of the protocol's binary server messages that may be dropped. */
const MESSAGE_DATA = 1;
const TIME = 2;
/** Position updates to parameter subscribers while playing, at most one per this many ms. */
const POSITION_UPDATE_MS = 1000;

interface ChannelState {
  id: number;
  /** The last message, encoded, and its timestamp (for `latch`). */
  last?: { timestamp: bigint; data: Uint8Array };
}

/**
 * Serve `replay` over the Foxglove WebSocket protocol at `ws://host:port`.
 * `@foxglove/ws-protocol` and `ws` are loaded here, on first use.
 */
export async function serveFoxglove(replay: Replay, options?: FoxgloveOptions): Promise<FoxgloveBridge> {
  if (!(replay instanceof Replay)) throw new TypeError(`serveFoxglove: 'replay' must be a Replay, got ${typeof replay}`);
  const opts = checkOptions(options, 'options', OPTION_NAMES) as FoxgloveOptions;
  const address = checkListenOptions(opts.host, opts.port, FOXGLOVE_DEFAULT_PORT);
  const name = opts.name ?? 'netreplay';
  if (typeof name !== 'string') throw new TypeError(`'name' must be a string, got ${typeof name}`);
  const timeOffset = opts.timeOffset ?? 0n;
  if (typeof timeOffset !== 'bigint' || timeOffset < 0n) {
    throw new TypeError(`'timeOffset' must be a bigint of nanoseconds >= 0, got ${String(timeOffset)}`);
  }
  const timeRate = opts.timeRate ?? 30;
  if (typeof timeRate !== 'number' || !(timeRate > 0 && timeRate <= 1000)) {
    throw new RangeError(`'timeRate' must be a number of messages per second in (0, 1000], got ${String(timeRate)}`);
  }
  const maxBuffered = checkPositiveInteger(opts.maxBufferedBytes ?? 8 * 1024 * 1024, 'maxBufferedBytes', 2 ** 40);
  const latch = opts.latch ?? true;
  if (typeof latch !== 'boolean') throw new TypeError(`'latch' must be a boolean, got ${typeof latch}`);
  const initial = checkChannels(opts.channels);

  // A CommonJS package whose named exports Node's ESM loader cannot see: required, on first use.
  const protocol = createRequire(import.meta.url)('@foxglove/ws-protocol') as typeof import('@foxglove/ws-protocol');
  const { WebSocketServer } = await import('ws');
  const bridge = new Bridge(replay, new protocol.FoxgloveServer({
    name,
    capabilities: [
      protocol.ServerCapability.time,
      protocol.ServerCapability.parameters,
      protocol.ServerCapability.parametersSubscribe,
      protocol.ServerCapability.services,
    ],
    // The encoding of service requests and responses.
    supportedEncodings: ['json'],
  }), { timeOffset, maxBuffered, latch });
  for (const c of initial) bridge.channelOf(c.type, c.topic, undefined);

  const http = createServer((_req, res) => {
    res.writeHead(426, { 'Content-Type': 'text/plain', Upgrade: 'websocket' });
    res.end('a Foxglove WebSocket server (subprotocol foxglove.websocket.v1)\n');
  });
  const wss = new WebSocketServer({
    server: http,
    // Clients send small JSON requests only.
    maxPayload: 1024 * 1024,
    handleProtocols: (protocols) => bridge.server.handleProtocols(protocols),
  });
  wss.on('connection', (ws, req) => bridge.connect(ws, `${req.socket.remoteAddress}:${req.socket.remotePort}`));
  // Errors of the listening socket after listen(): counted, never thrown.
  wss.on('error', () => bridge.counters.clientErrors++);
  const port = await listen(http, address);
  bridge.start(1000 / timeRate);
  return {
    url: urlOf('ws', address.host, port),
    stats: () => bridge.stats(),
    close: () => bridge.close(wss, http),
  };
}

function checkChannels(value: unknown): { type: string | null; topic: string }[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new TypeError(`'channels' must be an array of { type, topic }, got ${typeof value}`);
  return value.map((c: unknown, i) => {
    const { type, topic } = (c ?? {}) as { type?: unknown; topic?: unknown };
    if ((type !== null && typeof type !== 'string') || typeof topic !== 'string') {
      throw new TypeError(`'channels[${i}]' must be { type: string | null, topic: string }, got ${JSON.stringify(c)}`);
    }
    return { type, topic };
  });
}

class Bridge {
  readonly counters = { sent: 0, dropped: 0, disconnected: 0, clientErrors: 0, unencodable: 0 };
  /** Channels by (type, topic), and by id. */
  readonly #channels = new Map<string, ChannelState>();
  readonly #byId = new Map<number, ChannelState>();
  readonly #topics = new Set<string>();
  readonly #sockets = new Set<GuardedSocket>();
  /** Service ids to names. */
  readonly #services = new Map<number, string>();
  readonly #timeOffset: bigint;
  readonly #maxBuffered: number;
  readonly #latch: boolean;
  #timer: NodeJS.Timeout | undefined;
  #lastTime: bigint | undefined;
  #lastParams = new Map<string, Parameter['value']>();
  #lastPositionPush = 0;
  readonly #onMessage = (m: Message) => this.#send(m);
  readonly #onEnd = () => this.server.sendStatus({ level: 0, message: 'the replay reached its end' });
  readonly #onError = (err: Error) => this.server.sendStatus({ level: 2, message: `the replay failed: ${err.message}` });

  constructor(
    readonly replay: Replay,
    readonly server: FoxgloveServerType,
    options: { timeOffset: bigint; maxBuffered: number; latch: boolean },
  ) {
    this.#timeOffset = options.timeOffset;
    this.#maxBuffered = options.maxBuffered;
    this.#latch = options.latch;
    // A request the server could not parse or handle: it is the client's fault, never the process's.
    server.on('error', () => this.counters.clientErrors++);
    server.on('getParameters', ({ parameterNames, id }, connection) => {
      const all = this.#parameters();
      const wanted = parameterNames.length === 0 ? all : all.filter((p) => parameterNames.includes(p.name));
      server.publishParameterValues(wanted, id, connection);
    });
    server.on('setParameters', ({ parameters, id }, connection) => {
      // Answered a little later (see #setParameters): nothing of it may reject unhandled.
      this.#setParameters(parameters, id, connection).catch(() => this.counters.clientErrors++);
    });
    for (const [serviceName, { type, request }] of Object.entries(SERVICE_SCHEMAS)) {
      const definition = (schemaName: string, schema: object) => ({
        encoding: 'json',
        schemaName,
        schemaEncoding: 'jsonschema',
        schema: JSON.stringify(schema),
      });
      const id = server.addService({
        name: serviceName,
        type,
        request: definition(`${type}_Request`, request),
        response: definition(`${type}_Response`, RESPONSE_SCHEMA),
      });
      this.#services.set(id, serviceName);
    }
    server.on('serviceCallRequest', (request, connection) => {
      this.#call(request.serviceId, request.callId, request.encoding, request.data, connection).catch(() => this.counters.clientErrors++);
    });
    replay.on('message', this.#onMessage);
    replay.on('end', this.#onEnd);
    replay.on('error', this.#onError);
  }

  start(intervalMs: number): void {
    this.#timer = setInterval(() => this.#tick(), intervalMs);
    this.#timer.unref();
  }

  stats(): FoxgloveStats {
    return { clients: this.#sockets.size, channels: this.#channels.size, ...this.counters };
  }

  connect(ws: WsSocket, name: string): void {
    const socket = new GuardedSocket(ws, this.#maxBuffered, this.counters);
    this.#sockets.add(socket);
    ws.on('close', () => this.#sockets.delete(socket));
    this.server.handleConnection(socket, name);
    if (this.#latch) socket.onSubscribe = (subscriptions) => this.#sendLatched(socket, subscriptions);
    // A new client learns where the replay is at once, not at the next tick.
    const time = this.#now();
    if (time !== undefined) socket.send(timeFrame(time));
  }

  /**
   * The channel of (type, topic), advertised on first use: JSON with a
   * schema inferred from `payload`, or, for `passthrough`, the message's own
   * encoding and its stream's schema (MCAP cdr, protobuf, ...: Foxglove
   * decodes those itself).
   */
  channelOf(type: string | null, topic: string, payload: unknown, passthrough?: LogStream): ChannelState {
    const key = `${type ?? 'None'}\u0000${topic}`;
    let channel = this.#channels.get(key);
    if (!channel) {
      const schemaName = type ?? 'None';
      // '' is MCL's usual topic: the channel is named by its type then.
      let name = topic === '' ? `/${schemaName}` : topic;
      if (this.#topics.has(name)) name = `${name} [${schemaName}]`;
      this.#topics.add(name);
      const advertised: Omit<Channel, 'id'> = passthrough
        ? {
            topic: name,
            encoding: passthrough.encoding,
            schemaName: passthrough.schema?.name ?? schemaName,
            schemaEncoding: passthrough.schema?.encoding ?? '',
            // The protocol carries schemas as text: binary ones (protobuf, flatbuffer) in base64.
            schema: passthrough.schema ? schemaText(passthrough.schema) : '',
          }
        : {
            topic: name,
            encoding: 'json',
            schemaName,
            schemaEncoding: 'jsonschema',
            schema: JSON.stringify(payload === undefined ? { type: 'object' } : schemaOf(asObject(payload), 0)),
          };
      channel = { id: this.server.addChannel(advertised) };
      this.#channels.set(key, channel);
      this.#byId.set(channel.id, channel);
    }
    return channel;
  }

  async close(wss: WsServer, http: HttpServer): Promise<void> {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.replay.off('message', this.#onMessage);
    this.replay.off('end', this.#onEnd);
    this.replay.off('error', this.#onError);
    for (const socket of this.#sockets) socket.ws.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    await new Promise<void>((resolve) => {
      http.close(() => resolve());
      http.closeAllConnections();
    });
  }

  /** The stream of a message whose encoding the bridge sends as it is (not msgpack, json or a capture's bytes). */
  #passthroughOf(m: Message): LogStream | undefined {
    if (m.encoding === undefined || DECODED_ENCODINGS.has(m.encoding)) return undefined;
    return this.replay.streams.find((s) => s.type === m.type && s.encoding === m.encoding);
  }

  #send(m: Message): void {
    try {
      const passthrough = this.#passthroughOf(m);
      const bytes = m.payloadBytes ?? (m.payload instanceof Uint8Array ? m.payload : undefined);
      if (passthrough && bytes) {
        const channel = this.channelOf(m.type, m.topic, undefined, passthrough);
        const timestamp = this.#timestampOf(m.elapsedTime);
        if (this.#latch) channel.last = { timestamp, data: bytes };
        this.server.sendMessage(channel.id, timestamp, bytes);
        return;
      }
      const payload = m.payload === undefined && m.payloadBytes ? decodePayload(m.payloadBytes) : m.payload;
      const channel = this.channelOf(m.type, m.topic, payload);
      const timestamp = this.#timestampOf(m.elapsedTime);
      let data: Uint8Array;
      try {
        data = Buffer.from(toJson(asObject(payload)));
      } catch {
        this.counters.unencodable++;
        return;
      }
      if (this.#latch) channel.last = { timestamp, data };
      this.server.sendMessage(channel.id, timestamp, data);
    } catch {
      // A listener must not throw into the replay's emit: its other listeners would miss the message.
      this.counters.unencodable++;
    }
  }

  #sendLatched(socket: GuardedSocket, subscriptions: { id: number; channelId: number }[]): void {
    for (const { id, channelId } of subscriptions) {
      const last = this.#byId.get(channelId)?.last;
      if (last) socket.send(messageFrame(id, last.timestamp, last.data));
    }
  }

  #timestampOf(seconds: number): bigint {
    // Foxglove's times are unsigned: a time before the epoch (plus offset) is 0.
    const ns = BigInt(Math.round(seconds * 1e9)) + this.#timeOffset;
    return ns < 0n ? 0n : ns;
  }

  #now(): bigint | undefined {
    const time = this.replay.progress().time;
    return time === null ? undefined : this.#timestampOf(time);
  }

  #tick(): void {
    // Nobody to tell: progress() is not asked (each call is a sample of the replay's achieved speed).
    if (this.#sockets.size === 0) return;
    let progress: Progress;
    try {
      progress = this.replay.progress();
    } catch {
      return;
    }
    if (progress.time !== null) {
      const time = this.#timestampOf(progress.time);
      if (time !== this.#lastTime) {
        this.#lastTime = time;
        this.server.broadcastTime(time);
      }
    }
    this.#pushParameters(progress);
  }

  /** Tell parameter subscribers what changed (the position at most once a second while it moves). */
  #pushParameters(progress: Progress, force = false): void {
    const now = performance.now();
    const changed = this.#parameters(progress).filter((p) => {
      const last = this.#lastParams.get(p.name);
      if (last === p.value) return false;
      if (p.name === PARAMETERS.position && !force && progress.state === 'playing' && now - this.#lastPositionPush < POSITION_UPDATE_MS) {
        return false;
      }
      return true;
    });
    if (changed.length === 0) return;
    for (const p of changed) {
      this.#lastParams.set(p.name, p.value);
      if (p.name === PARAMETERS.position) this.#lastPositionPush = now;
    }
    this.server.updateParameterValues(changed);
  }

  #parameters(progress = this.replay.progress()): Parameter[] {
    const speed = this.replay.speed;
    return [
      { name: PARAMETERS.paused, value: progress.state !== 'playing' && progress.state !== 'delayed' },
      Number.isFinite(speed) ? { name: PARAMETERS.speed, value: speed, type: 'float64' } : { name: PARAMETERS.speed, value: 'Infinity' },
      progress.position === null
        ? { name: PARAMETERS.position, value: undefined }
        : { name: PARAMETERS.position, value: progress.position, type: 'float64' },
      { name: PARAMETERS.state, value: progress.state },
    ];
  }

  async #setParameters(parameters: Parameter[], id: string | undefined, connection: IWebSocket | undefined): Promise<void> {
    const names: string[] = [];
    for (const { name, value } of Array.isArray(parameters) ? parameters : []) {
      try {
        names.push(name);
        this.#apply(name, value);
      } catch (err) {
        this.server.sendStatus({ level: 2, message: `cannot set ${name} to ${JSON.stringify(value)}: ${(err as Error).message}` }, connection);
      }
    }
    // Let the engine act on it (a seek's position, say) before answering with the values now.
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (id !== undefined && connection) {
      this.server.publishParameterValues(this.#parameters().filter((p) => names.includes(p.name)), id, connection);
    }
    this.#pushParameters(this.replay.progress(), true);
  }

  async #call(serviceId: number, callId: number, encoding: string, data: ArrayBufferView, connection: IWebSocket): Promise<void> {
    const name = this.#services.get(serviceId) ?? String(serviceId);
    try {
      if (encoding !== 'json') throw new TypeError(`the request's encoding must be json, got ${JSON.stringify(encoding)}`);
      const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8').trim();
      let request: unknown = {};
      if (text !== '') {
        try {
          request = JSON.parse(text);
        } catch (err) {
          throw new TypeError(`the request is not JSON: ${(err as Error).message}`);
        }
      }
      if (typeof request !== 'object' || request === null || Array.isArray(request)) {
        throw new TypeError(`the request must be a JSON object, got ${JSON.stringify(request)}`);
      }
      const body = request as Record<string, unknown>;
      const only = (...fields: string[]) => {
        const unknown = Object.keys(body).find((k) => !fields.includes(k));
        if (unknown !== undefined) throw new TypeError(`unknown field '${unknown}'${fields.length ? `; it takes: ${fields.join(', ')}` : '; it takes none'}`);
      };
      switch (name) {
        case SERVICES.step: {
          only('n');
          const n = body.n ?? 1;
          if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) throw new RangeError(`'n' must be an integer >= 1, got ${JSON.stringify(n)}`);
          await this.replay.step(n);
          break;
        }
        case SERVICES.playUntil: {
          only('time');
          const time = body.time;
          if (typeof time !== 'number' || !Number.isFinite(time)) throw new RangeError(`'time' must be a finite number of seconds, got ${JSON.stringify(time)}`);
          await this.replay.playUntil(time);
          break;
        }
        case SERVICES.stop:
          only();
          this.replay.stop();
          break;
        default:
          throw new TypeError('no such service');
      }
      const progress = this.replay.progress();
      const response: ServiceResponse = { state: progress.state, position: progress.position, delivered: progress.delivered };
      this.server.sendServiceCallResponse({ serviceId, callId, encoding: 'json', data: Buffer.from(JSON.stringify(response)) }, connection);
    } catch (err) {
      this.server.sendServiceCallFailure(
        { op: 'serviceCallFailure', serviceId, callId, message: `${name}: ${(err as Error)?.message ?? String(err)}` },
        connection,
      );
    }
    this.#pushParameters(this.replay.progress(), true);
  }

  #apply(name: string, value: unknown): void {
    switch (name) {
      case PARAMETERS.paused:
        if (typeof value !== 'boolean') throw new TypeError(`it must be a boolean`);
        if (value) this.replay.pause();
        else this.replay.start();
        return;
      case PARAMETERS.speed:
        this.replay.speed = speedFromJson(value, name);
        return;
      case PARAMETERS.position:
        if (typeof value !== 'number' || !Number.isFinite(value)) throw new TypeError(`it must be a finite number of seconds`);
        this.replay.seek(value);
        return;
      case PARAMETERS.state:
        throw new TypeError(`it is read-only (set ${PARAMETERS.paused} to pause or play)`);
      default:
        throw new TypeError(`no such parameter; parameters: ${Object.values(PARAMETERS).join(', ')}`);
    }
  }
}

/**
 * A client's socket as FoxgloveServer sees it: sends are bounded (see
 * `maxBufferedBytes`) and never throw, whatever the client does.
 */
class GuardedSocket implements IWebSocket {
  binaryType = 'arraybuffer';
  onerror: IWebSocket['onerror'];
  onopen: IWebSocket['onopen'];
  onclose: IWebSocket['onclose'];
  onmessage: IWebSocket['onmessage'];
  /** Called after the server has handled a client's subscribe request. */
  onSubscribe: ((subscriptions: { id: number; channelId: number }[]) => void) | undefined;

  constructor(
    readonly ws: WsSocket,
    readonly maxBuffered: number,
    readonly counters: Bridge['counters'],
  ) {
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      const event = isBinary
        ? { data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) }
        : { data: bytes.toString('utf8') };
      this.onmessage?.(event);
      if (!isBinary && this.onSubscribe) this.#afterRequest(event.data as string);
    });
    ws.on('close', (code: number, reason: Buffer) => this.onclose?.({ code, reason: reason.toString(), wasClean: true }));
    // A socket error (a bad frame, a reset): ws closes the socket; without a listener it would be thrown.
    ws.on('error', () => this.counters.clientErrors++);
  }

  get protocol(): string {
    return this.ws.protocol;
  }

  close(): void {
    this.ws.close();
  }

  /** One argument, so that FoxgloveServer sends each message as one buffer (it checks `send.length`). */
  send(data: string | ArrayBuffer | ArrayBufferView): void {
    const ws = this.ws;
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > 4 * this.maxBuffered) {
      // It has stopped reading even what is never dropped (JSON answers): disconnect it, so its memory stays bounded.
      this.counters.disconnected++;
      ws.terminate();
      return;
    }
    if (typeof data === 'string') {
      ws.send(data);
      return;
    }
    const bytes = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
    const droppable = bytes[0] === MESSAGE_DATA || bytes[0] === TIME;
    // An empty socket takes any frame: a message larger than the bound still goes out.
    if (droppable && ws.bufferedAmount > 0 && ws.bufferedAmount + bytes.byteLength > this.maxBuffered) {
      this.counters.dropped++;
      return;
    }
    if (bytes[0] === MESSAGE_DATA) this.counters.sent++;
    ws.send(bytes);
  }

  #afterRequest(text: string): void {
    try {
      const request = JSON.parse(text) as { op?: unknown; subscriptions?: unknown };
      if (request.op === 'subscribe' && Array.isArray(request.subscriptions)) {
        this.onSubscribe?.(
          request.subscriptions.filter(
            (s): s is { id: number; channelId: number } =>
              typeof s === 'object' && s !== null && typeof s.id === 'number' && typeof s.channelId === 'number',
          ),
        );
      }
    } catch {
      // The server has already reported what it could not parse.
    }
  }
}

function timeFrame(timestamp: bigint): Uint8Array {
  const frame = new Uint8Array(9);
  const view = new DataView(frame.buffer);
  view.setUint8(0, TIME);
  view.setBigUint64(1, timestamp, true);
  return frame;
}

function messageFrame(subscriptionId: number, timestamp: bigint, data: Uint8Array): Uint8Array {
  const frame = new Uint8Array(13 + data.byteLength);
  const view = new DataView(frame.buffer);
  view.setUint8(0, MESSAGE_DATA);
  view.setUint32(1, subscriptionId, true);
  view.setBigUint64(5, timestamp, true);
  frame.set(data, 13);
  return frame;
}

/** Foxglove's json channels carry objects: a payload that is not a map is sent as `{ value }`. */
function asObject(payload: unknown): object {
  return typeof payload === 'object' && payload !== null && !Array.isArray(payload) && !(payload instanceof Uint8Array)
    ? payload
    : { value: payload ?? null };
}

/**
 * JSON for a json channel: binary data as base64 strings (Foxglove's
 * convention, `contentEncoding: base64` in the schema), 64-bit integers as
 * numbers when exact and as strings otherwise, non-finite numbers as null.
 */
function toJson(value: object): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, key: string, v: unknown) {
    // A Buffer has already been through its toJSON here: look at the value itself.
    const raw = this[key];
    if (raw instanceof Uint8Array) return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64');
    if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
    return v;
  });
}

/** A JSON Schema of a payload, from one message of its channel (so that panels can offer its fields). */
/** Encodings the bridge decodes and sends as JSON; any other MCAP encoding goes as it is. */
const DECODED_ENCODINGS = new Set(['msgpack', 'json', 'bytes']);

/** Schema encodings whose data is binary (the protocol wants those in base64). */
const BINARY_SCHEMAS = new Set(['protobuf', 'flatbuffer']);

function schemaText(schema: NonNullable<LogStream['schema']>): string {
  const data = Buffer.from(schema.data);
  return BINARY_SCHEMAS.has(schema.encoding) ? data.toString('base64') : data.toString('utf8');
}

function schemaOf(value: unknown, depth: number): Record<string, unknown> {
  if (depth > 16) return {};
  if (value instanceof Uint8Array) return { type: 'string', contentEncoding: 'base64' };
  if (value instanceof Date) return { type: 'string' };
  if (Array.isArray(value)) return value.length > 0 ? { type: 'array', items: schemaOf(value[0], depth + 1) } : { type: 'array' };
  switch (typeof value) {
    case 'number':
      return { type: 'number' };
    case 'bigint':
      return {};
    case 'string':
      return { type: 'string' };
    case 'boolean':
      return { type: 'boolean' };
    case 'object':
      if (value === null) return {};
      return {
        type: 'object',
        properties: Object.fromEntries(Object.entries(value).map(([k, v]) => [k, schemaOf(v, depth + 1)])),
      };
    default:
      return {};
  }
}
