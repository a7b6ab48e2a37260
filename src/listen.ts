// What the remote-control servers (control.ts, foxglove.ts) share: the
// address a command-line flag gives, listening on it, and the URL it ends up at.
import type { Server } from 'node:net';

export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * `SCHEME://HOST:PORT`, `HOST:PORT`, `:PORT` or `PORT` (IPv6 hosts in
 * brackets); the host defaults to 127.0.0.1 (loopback), and a value without
 * a port is an error unless `defaultPort` is given. `what` names the value in
 * errors (a flag, say).
 */
export function parseListenAddress(
  text: unknown,
  scheme: 'http' | 'ws',
  what: string,
  defaultPort?: number,
): ListenAddress {
  if (typeof text !== 'string') throw new TypeError(`${what} must be a string, got ${typeof text}`);
  const bad = (why: string) =>
    new RangeError(`${what}: ${why}, got ${JSON.stringify(text)} (expected ${scheme}://HOST:PORT, HOST:PORT, :PORT or PORT)`);
  let rest = text.trim();
  const schemeAt = rest.indexOf('://');
  if (schemeAt >= 0) {
    const given = rest.slice(0, schemeAt).toLowerCase();
    if (given !== scheme) throw bad(`the scheme must be ${scheme}://`);
    rest = rest.slice(schemeAt + 3);
    if (rest.endsWith('/')) rest = rest.slice(0, -1);
    if (rest.includes('/') || rest.includes('?') || rest.includes('#')) throw bad('a path is not allowed');
  }
  if (rest.includes('@')) throw bad('credentials are not allowed');
  let host = '';
  let portText: string | undefined;
  if (/^\d+$/.test(rest)) portText = rest;
  else if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw bad("an IPv6 address needs its closing ']'");
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) throw bad("only ':PORT' may follow an IPv6 address");
      portText = after.slice(1);
    }
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon >= 0) {
      host = rest.slice(0, colon);
      portText = rest.slice(colon + 1);
      if (host.includes(':')) throw bad('an IPv6 address must be in brackets');
    } else host = rest;
  }
  if (portText === undefined) {
    if (defaultPort === undefined) throw bad('a port is needed');
    portText = String(defaultPort);
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw bad(`the port must be 0..65535 ('${portText}')`);
  if (host === '') host = '127.0.0.1';
  return { host, port: Number(portText) };
}

/** The options' host and port, checked (defaults: loopback, an ephemeral port). */
export function checkListenOptions(host: unknown, port: unknown, defaultPort = 0): ListenAddress {
  if (host !== undefined && (typeof host !== 'string' || host === '')) {
    throw new TypeError(`'host' must be a non-empty string, got ${typeof host === 'string' ? '""' : typeof host}`);
  }
  if (port !== undefined && typeof port !== 'number') throw new TypeError(`'port' must be a number, got ${typeof port}`);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    throw new RangeError(`'port' must be an integer 0..65535 (0: any free port), got ${port}`);
  }
  return { host: host ?? '127.0.0.1', port: port ?? defaultPort };
}

/** Listen, resolving once bound, rejecting with what the system said (EADDRINUSE, say). */
export function listen(server: Server, { host, port }: ListenAddress): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : port);
    });
  });
}

/** `scheme://host:port`, an IPv6 host in brackets. */
export function urlOf(scheme: 'http' | 'ws', host: string, port: number): string {
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** A speed given as JSON: a number > 0, or "Infinity" / "inf" (JSON has no Infinity). */
export function speedFromJson(value: unknown, name: string): number {
  if (value === 'Infinity' || value === 'inf') return Infinity;
  if (typeof value !== 'number') {
    throw new TypeError(`'${name}' must be a number > 0 or "Infinity", got ${JSON.stringify(value) ?? typeof value}`);
  }
  if (!(value > 0)) throw new RangeError(`'${name}' must be a number > 0 or "Infinity", got ${value}`);
  return value;
}
