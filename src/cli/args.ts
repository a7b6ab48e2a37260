// Command-line flags: one table per command gives both the parsing and the
// command's --help, so the two cannot drift apart.
import { parseArgs } from 'node:util';

/** A mistake in the command line: exit 2 with the message. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface Flag {
  /** The long name, without `--`. */
  name: string;
  short?: string;
  /** The value's placeholder (`S`, `N`, `URL`); none for a switch. */
  value?: string;
  /** The value may be left out (`--loop [N]`): the next word is taken only when it matches. */
  optional?: RegExp;
  /** Given several times, each value is kept. */
  multiple?: boolean;
  /** Takes every following word up to the next flag (`--topics /a /b`), as ros2 bag play does. */
  greedy?: boolean;
  help: string;
}

export interface Command {
  name: string;
  /** What follows the command name in the usage line, e.g. `<path>...`. */
  operands: string;
  /** One line for the list of commands. */
  brief: string;
  summary: string;
  /** Flags in groups, each with a heading. */
  groups: { heading: string; flags: Flag[] }[];
  /** Paragraphs after the flags. */
  notes?: string[];
}

export const HELP_FLAG: Flag = { name: 'help', short: 'h', help: "Print this command's usage and exit." };

function flagsOf(command: Command): Flag[] {
  return command.groups.flatMap((g) => g.flags);
}

function flagLabel(f: Flag): string {
  const long = `--${f.name}`;
  const value = f.value === undefined ? '' : f.optional ? ` [${f.value}]` : f.greedy ? ` ${f.value}...` : ` ${f.value}`;
  return `${f.short ? `-${f.short}, ` : '    '}${long}${value}`;
}

/** Wraps `text` to `width` columns, each line after the first indented by `indent`. */
function wrap(text: string, width: number, indent: number): string {
  const words = text.split(/\s+/).filter(Boolean);
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

/** The command's full usage: every flag, grouped. */
export function commandUsage(command: Command): string {
  const out = [`Usage: netreplay ${command.name} ${command.operands} [flags]`, '', wrap(command.summary, 78, 0)];
  const labelWidth = 34;
  for (const group of [...command.groups, { heading: 'General', flags: [HELP_FLAG] }]) {
    out.push('', `${group.heading}:`);
    for (const f of group.flags) {
      const label = `  ${flagLabel(f)}`;
      const help = wrap(f.help, 78 - labelWidth, labelWidth);
      out.push(label.length < labelWidth ? `${label.padEnd(labelWidth)}${help}` : `${label}\n${' '.repeat(labelWidth)}${help}`);
    }
  }
  for (const note of command.notes ?? []) out.push('', wrap(note, 78, 0));
  return out.join('\n');
}

export type Values = Record<string, string | boolean | string[] | undefined>;

/**
 * Parses `argv` against the command's flags. Flags with an optional value
 * given without one read as `''`; greedy flags collect the words after them.
 */
export function parseCommand(command: Command, argv: string[]): { values: Values; positionals: string[] } {
  const flags = [...flagsOf(command), HELP_FLAG];
  const byLong = new Map(flags.map((f) => [f.name, f]));
  const byShort = new Map(flags.filter((f) => f.short).map((f) => [f.short!, f]));
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      args.push(...argv.slice(i));
      break;
    }
    const flag = arg.startsWith('--') && !arg.includes('=') ? byLong.get(arg.slice(2)) : arg.length === 2 && arg[0] === '-' ? byShort.get(arg[1]!) : undefined;
    if (flag?.optional) {
      const next = argv[i + 1];
      if (next !== undefined && flag.optional.test(next)) {
        args.push(`--${flag.name}=${next}`);
        i++;
      } else args.push(`--${flag.name}=`);
    } else if (flag?.greedy) {
      let taken = 0;
      while (i + 1 < argv.length && !argv[i + 1]!.startsWith('-')) {
        args.push(`--${flag.name}=${argv[++i]}`);
        taken++;
      }
      if (taken === 0) throw new UsageError(`${arg} needs at least one ${flag.value ?? 'value'}`);
    } else if (flag?.value !== undefined && /^-[\d.]/.test(argv[i + 1] ?? '')) {
      // A negative number is a value, not a flag (parseArgs would refuse it as ambiguous).
      args.push(`${arg.startsWith('--') ? arg : `--${flag.name}`}=${argv[++i]}`);
    } else args.push(arg);
  }
  const options = Object.fromEntries(
    flags.map((f) => [
      f.name,
      {
        type: f.value === undefined ? ('boolean' as const) : ('string' as const),
        ...(f.short && { short: f.short }),
        ...((f.multiple || f.greedy) && { multiple: true }),
      },
    ]),
  );
  try {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: values as Values, positionals };
  } catch (err) {
    const message = (err as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(`${message} (see 'netreplay ${command.name} --help')`);
  }
}

// Value parsers: each names the flag and the value it refused.

export function text(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** One of `choices`, or undefined when the flag is not given. */
export function choice<T extends string>(values: Values, name: string, choices: readonly T[]): T | undefined {
  const v = text(values, name);
  if (v === undefined) return undefined;
  if (!(choices as readonly string[]).includes(v)) {
    throw new UsageError(`--${name} must be ${choices.map((c) => `'${c}'`).join(', ').replace(/, ([^,]*)$/, ' or $1')}, got '${v}'`);
  }
  return v as T;
}

export function list(values: Values, name: string): string[] {
  const v = values[name];
  return Array.isArray(v) ? v : [];
}

export function flag(values: Values, name: string): boolean {
  return values[name] === true;
}

export function seconds(values: Values, name: string, range: 'any' | 'nonNegative' | 'positive' = 'any'): number | undefined {
  const v = text(values, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  const ok = v.trim() !== '' && Number.isFinite(n) && (range === 'any' || (range === 'positive' ? n > 0 : n >= 0));
  if (!ok) {
    const what = range === 'any' ? 'a number of seconds' : range === 'positive' ? 'a number of seconds > 0' : 'a number of seconds >= 0';
    throw new UsageError(`--${name} must be ${what}, got '${v}'`);
  }
  return n;
}

export function positiveNumber(values: Values, name: string, what = 'a number > 0'): number | undefined {
  const v = text(values, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be ${what}, got '${v}'`);
  return n;
}

export function integer(values: Values, name: string, min = 0): number | undefined {
  const v = text(values, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`--${name} must be a whole number >= ${min}, got '${v}'`);
  }
  return n;
}

/** A speed factor: a number > 0, or 'inf' / 'infinity' (as fast as possible). */
export function speed(v: string, name: string): number {
  const n = /^inf(inity)?$/i.test(v) ? Infinity : Number(v);
  if (v.trim() === '' || Number.isNaN(n) || n <= 0) throw new UsageError(`--${name} must be a number > 0 or 'inf', got '${v}'`);
  return n;
}

/**
 * A wall-clock instant: an ISO 8601 time, nanoseconds since the epoch (a
 * whole number of at least 13 digits), or `+S` seconds from now.
 */
export function instant(v: string, name: string): bigint {
  const s = v.trim();
  if (/^\d{13,}$/.test(s)) return BigInt(s);
  if (/^\+\d+(\.\d+)?$/.test(s)) {
    return BigInt(Date.now()) * 1_000_000n + BigInt(Math.round(Number(s.slice(1)) * 1e9));
  }
  const ms = /^\d{4}-\d{2}-\d{2}/.test(s) ? Date.parse(s) : NaN;
  if (Number.isNaN(ms)) {
    throw new UsageError(`--${name} must be an ISO time (2026-12-02T10:00:00Z), nanoseconds since the epoch or +SECONDS, got '${v}'`);
  }
  return BigInt(ms) * 1_000_000n;
}

/** A RegExp from a flag's value; a bad pattern is a usage error naming it. */
export function regex(v: string, name: string): RegExp {
  try {
    return new RegExp(v);
  } catch (err) {
    throw new UsageError(`--${name}: bad regular expression '${v}': ${(err as Error).message}`);
  }
}
