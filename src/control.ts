// Remote control of a Replay over HTTP: a small JSON API on Node's own http
// module (status, pause, resume, stop, seek, step, speed). It only calls the
// Replay's public methods, so what it can do is what the API can.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { ReplayStateError } from './errors.js';
import { checkListenOptions, listen, parseListenAddress, speedFromJson, urlOf, type ListenAddress } from './listen.js';
import { Replay, type Progress } from './replay.js';
import type { ReplayStats } from './scheduler.js';
import type { UdpStats } from './net.js';
import { checkOptions } from './validate.js';

export interface ControlOptions {
  /** Address to bind (default 127.0.0.1: loopback only). */
  host?: string;
  /** Port (default 0: any free port; see `url`). */
  port?: number;
}

export interface ControlServer {
  /** Where it listens, `http://HOST:PORT`. */
  readonly url: string;
  /** Stop listening and drop open connections. */
  close(): Promise<void>;
}

/** `GET /status`: the replay's progress, its statistics and its UDP sink's. */
export interface ControlStatus extends Progress {
  stats: ReplayStats;
  udp: UdpStats | null;
}

/** The value of `--control`: `http://HOST:PORT`, `HOST:PORT`, `:PORT` or `PORT` (host: 127.0.0.1). */
export function parseControlAddress(text: string): ListenAddress {
  return parseListenAddress(text, 'http', '--control');
}

/** Bodies larger than this are refused (413): every request body is a few bytes. */
const MAX_BODY_BYTES = 64 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

type Body = Record<string, unknown>;
interface Route {
  method: 'GET' | 'POST';
  /** Body fields it takes (anything else is a 400). */
  fields: readonly string[];
  run(replay: Replay, body: Body): Promise<object> | object;
}

const ROUTES: Record<string, Route> = {
  '/status': { method: 'GET', fields: [], run: (replay) => status(replay) },
  '/pause': { method: 'POST', fields: [], run: (replay) => ({ changed: replay.pause(), status: status(replay) }) },
  // start() resumes a paused replay, starts an idle one and replays an ended one.
  '/resume': { method: 'POST', fields: [], run: (replay) => ({ changed: replay.start(), status: status(replay) }) },
  '/stop': { method: 'POST', fields: [], run: (replay) => ({ changed: replay.stop(), status: status(replay) }) },
  '/seek': {
    method: 'POST',
    fields: ['time'],
    run: (replay, body) => {
      const time = body.time;
      if (typeof time !== 'number' || !Number.isFinite(time)) {
        throw new HttpError(400, `'time' must be a finite number of seconds (log time), got ${describe(time)}`, 'time');
      }
      replay.seek(time);
      return { changed: true, status: status(replay) };
    },
  },
  '/step': {
    method: 'POST',
    fields: ['n'],
    run: async (replay, body) => {
      const n = body.n ?? 1;
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) {
        throw new HttpError(400, `'n' must be an integer >= 1, got ${describe(n)}`, 'n');
      }
      await replay.step(n);
      return { changed: true, status: status(replay) };
    },
  },
  '/speed': {
    method: 'POST',
    fields: ['speed'],
    run: (replay, body) => {
      replay.speed = speedFromJson(body.speed, 'speed');
      return { changed: true, status: status(replay) };
    },
  },
};

function status(replay: Replay): ControlStatus {
  return { ...replay.progress(), stats: replay.stats(), udp: replay.udpStats() };
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  return JSON.stringify(value) ?? typeof value;
}

/** JSON of a status or an error: non-finite numbers as strings ("Infinity"), not null. */
function json(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));
}

/**
 * Serve `replay`'s control API at `http://host:port`. Requests and answers
 * are JSON; errors are `{ "error": message, "field"? }` with 400 (a bad
 * body), 404 (no such route), 405 (wrong method), 409 (the replay's state
 * does not allow it, or it is closed) or 413 (a body too large). Requests
 * carrying an `Origin` header (sent by web browsers) get 403: a web page
 * must not drive a replay on this machine.
 */
export async function serveControl(replay: Replay, options?: ControlOptions): Promise<ControlServer> {
  if (!(replay instanceof Replay)) throw new TypeError(`serveControl: 'replay' must be a Replay, got ${typeof replay}`);
  const opts = checkOptions(options, 'options', ['host', 'port']);
  const address = checkListenOptions(opts.host, opts.port);
  const server = createServer((req, res) => {
    handle(replay, req, res).catch((err: unknown) => send(res, 500, { error: String((err as Error)?.message ?? err) }));
  });
  const port = await listen(server, address);
  let closing: Promise<void> | undefined;
  return {
    url: urlOf('http', address.host, port),
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // fetch and browsers keep connections alive: without this, close()
        // waits for them. A response being written (a /stop that ends the
        // replay, and so this server) gets a moment to finish.
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 200).unref();
      });
      return closing;
    },
  };
}

async function handle(replay: Replay, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    if (req.headers.origin !== undefined) {
      throw new HttpError(403, `requests from web pages (Origin: ${req.headers.origin}) are refused`);
    }
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const route = ROUTES[path];
    if (!route) throw new HttpError(404, `no route ${JSON.stringify(path)}; routes: ${Object.keys(ROUTES).join(', ')}`);
    if (req.method !== route.method && !(route.method === 'GET' && req.method === 'HEAD')) {
      res.setHeader('Allow', route.method === 'GET' ? 'GET, HEAD' : 'POST');
      throw new HttpError(405, `${path} takes ${route.method}, not ${req.method}`);
    }
    const body = await readBody(req, route);
    const result = await route.run(replay, body);
    send(res, 200, result);
  } catch (err) {
    if (err instanceof HttpError) {
      send(res, err.status, { error: err.message, ...(err.field !== undefined && { field: err.field }) });
    } else if (err instanceof ReplayStateError) {
      send(res, 409, { error: err.message });
    } else if (err instanceof TypeError || err instanceof RangeError) {
      send(res, 400, { error: err.message });
    } else throw err;
  }
}

async function readBody(req: IncomingMessage, route: Route): Promise<Body> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `the body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `the body is not JSON: ${(err as Error).message}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpError(400, `the body must be a JSON object, got ${describe(body)}`);
  }
  for (const key of Object.keys(body)) {
    if (!route.fields.includes(key)) {
      const known = route.fields.length ? `; it takes: ${route.fields.join(', ')}` : '; it takes no fields';
      throw new HttpError(400, `unknown field '${key}' for ${req.url}${known}`, key);
    }
  }
  return body as Body;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = json(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}
