// Error classes of the public API, and the translation of native error codes.
import type { ErrorInfo } from './native.js';

/** Base class of the errors netreplay raises itself (not argument errors). */
export class NetreplayError extends Error {
  readonly code: string;
  constructor(message: string, code: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A file or directory could not be opened or read. */
export class LogAccessError extends NetreplayError {
  readonly path: string | undefined;
  constructor(message: string, path?: string) {
    super(message, 'ERR_NETREPLAY_IO');
    this.path = path;
  }
}

/** A socket could not be made, bound, joined to a multicast group, or sent on (`url` names it). */
export class NetworkError extends NetreplayError {
  readonly url: string | undefined;
  constructor(message: string, url?: string) {
    super(message, 'ERR_NETREPLAY_NETWORK');
    this.url = url;
  }
}

/** A record that does not follow the log format. */
export class MalformedRecordError extends NetreplayError {
  readonly path: string | undefined;
  /** 1-based line number in `path`. */
  readonly line: number | undefined;
  readonly byteOffset: number | undefined;
  /** The start of the offending line. */
  readonly snippet: string | undefined;
  constructor(info: ErrorInfo) {
    super(info.message, 'ERR_NETREPLAY_MALFORMED');
    this.path = info.path;
    this.line = info.line;
    this.byteOffset = info.byteOffset;
    this.snippet = info.snippet;
  }
}

/** A directory or split set that is not one consistent recording. */
export class LogLayoutError extends NetreplayError {
  readonly path: string | undefined;
  constructor(message: string, path?: string) {
    super(message, 'ERR_NETREPLAY_LAYOUT');
    this.path = path;
  }
}

/** An operation the object's current state does not allow. */
export class ReplayStateError extends NetreplayError {
  constructor(message: string) {
    super(message, 'ERR_NETREPLAY_STATE');
  }
}

/** A native error (thrown, or described by an ErrorInfo) as a typed error. */
export function translateError(err: unknown): Error {
  if (err instanceof NetreplayError || !(err instanceof Error || isErrorInfo(err))) {
    return err as Error;
  }
  const info: ErrorInfo = isErrorInfo(err)
    ? err
    : { code: (err as Error & { code?: string }).code ?? '', message: (err as Error).message };
  switch (info.code) {
    case 'ERR_NETREPLAY_IO':
      return new LogAccessError(info.message, info.path);
    case 'ERR_NETREPLAY_NETWORK':
      return new NetworkError(info.message, info.path);
    case 'ERR_NETREPLAY_MALFORMED':
      return new MalformedRecordError(info);
    case 'ERR_NETREPLAY_LAYOUT':
      return new LogLayoutError(info.message, info.path);
    case 'ERR_NETREPLAY_STATE':
      return new ReplayStateError(info.message);
    case 'ERR_NETREPLAY_INVALID_ARGUMENT':
      return Object.assign(new RangeError(info.message), { code: info.code });
    default:
      return err instanceof Error ? err : new NetreplayError(info.message, info.code);
  }
}

function isErrorInfo(value: unknown): value is ErrorInfo {
  return (
    typeof value === 'object' &&
    value !== null &&
    !(value instanceof Error) &&
    typeof (value as ErrorInfo).code === 'string' &&
    typeof (value as ErrorInfo).message === 'string'
  );
}

/** Run a native call, rethrowing its error as a typed one. */
export function callNative<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw translateError(err);
  }
}
