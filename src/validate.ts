// Argument checks shared by the public classes: TypeError for a wrong type,
// RangeError for a value out of its domain; each names the argument.

export function checkSpeed(speed: unknown, name = 'speed'): number {
  if (typeof speed !== 'number') {
    throw new TypeError(`'${name}' must be a number > 0 or Infinity, got ${describe(speed)}`);
  }
  if (Number.isNaN(speed) || speed <= 0) {
    throw new RangeError(`'${name}' must be a number > 0 or Infinity, got ${speed}`);
  }
  return speed;
}

/** Seconds, finite and ≥ 0. */
export function checkNonNegativeSeconds(value: unknown, name: string): number {
  if (typeof value !== 'number') {
    throw new TypeError(`'${name}' must be a number of seconds >= 0, got ${describe(value)}`);
  }
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`'${name}' must be a finite number of seconds >= 0, got ${value}`);
  }
  return value;
}

export function checkPositiveInteger(value: unknown, name: string, max = 2 ** 32 - 1): number {
  if (typeof value !== 'number') {
    throw new TypeError(`'${name}' must be an integer > 0, got ${describe(value)}`);
  }
  if (!Number.isInteger(value) || value <= 0 || value > max) {
    throw new RangeError(`'${name}' must be an integer between 1 and ${max}, got ${value}`);
  }
  return value;
}

export function checkTime(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number') {
    throw new TypeError(`'${name}' must be a number of seconds, got ${describe(value)}`);
  }
  if (!Number.isFinite(value)) {
    throw new RangeError(`'${name}' must be a finite number of seconds, got ${value}`);
  }
  return value;
}

export function checkWindow(minTime: unknown, maxTime: unknown): { minTime?: number; maxTime?: number } {
  const min = checkTime(minTime, 'minTime');
  const max = checkTime(maxTime, 'maxTime');
  if (min !== undefined && max !== undefined && min > max) {
    throw new RangeError(`'minTime' (${min}) must not be greater than 'maxTime' (${max})`);
  }
  return { ...(min !== undefined && { minTime: min }), ...(max !== undefined && { maxTime: max }) };
}

export function checkPath(value: unknown, name = 'path'): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`'${name}' must be a non-empty string, got ${describe(value)}`);
  }
  return value;
}

/**
 * An options object (undefined and null are `{}`). With `known`, a key not
 * in it is a TypeError naming the key: a typo such as `{ sped: 5 }` would
 * otherwise be ignored silently.
 */
export function checkOptions(value: unknown, name = 'options', known?: readonly string[]): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`'${name}' must be an object, got ${describe(value)}`);
  }
  if (known) {
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) {
        const near = known.find((k) => editDistance(k, key) <= 2);
        throw new TypeError(
          `unknown option '${key}' in '${name}'${near ? ` (did you mean '${near}'?)` : ''}; known: ${known.join(', ')}`,
        );
      }
    }
  }
  return value as Record<string, unknown>;
}

/**
 * The names of the options type `T`, for `checkOptions`: every name listed
 * must be a key of `T`, and a key of `T` left out is a compile error.
 */
export function optionNames<T extends object>() {
  return <const K extends readonly (keyof T & string)[]>(
    ...names: K & ([Exclude<keyof T, K[number]>] extends [never] ? unknown : { missing: Exclude<keyof T, K[number]> })
  ): K => names;
}

/** The options among `names` that are set (for an owner passing them on). */
export function pick<T extends object>(options: T, names: readonly string[]): Partial<T> {
  const from = options as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const name of names) if (from[name] !== undefined) out[name] = from[name];
  return out as Partial<T>;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

export function checkOnError(value: unknown): 'fail' | 'skip' {
  if (value === undefined) return 'fail';
  if (value !== 'fail' && value !== 'skip') {
    throw new RangeError(`'onError' must be 'fail' or 'skip', got ${describe(value)}`);
  }
  return value;
}

export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}
