// `play` on a real pseudo-terminal (util-linux `script`): the status line,
// the keys, and the terminal's mode restored on every way out.
import test from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { root, tempDir, writeLog } from './helpers.js';

const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
const ptyTest = hasScript ? test.serial : test.serial.skip;
if (!hasScript) console.log('cli-tty: util-linux `script` is not installed: the pseudo-terminal tests are skipped');

const cli = join(root, 'src', 'cli.ts');

const KEYS = {
  space: ' ',
  right: '\x1b[C',
  up: '\x1b[A',
  down: '\x1b[B',
  shiftLeft: '\x1b[1;2D',
  ctrlC: '\x03',
};

/**
 * The lines a terminal would show for `raw` (no wrapping): `\r` returns to
 * the line's start, `ESC[K` clears to its end, colours are dropped.
 */
function screen(raw: string): string[] {
  const out: string[] = [];
  for (const row of raw.split('\n')) {
    let line = '';
    let col = 0;
    for (let i = 0; i < row.length; i++) {
      const c = row[i]!;
      if (c === '\r') col = 0;
      else if (c === '\x1b') {
        const m = /^\x1b\[([0-9;]*)([A-Za-z])/.exec(row.slice(i));
        if (m?.[2] === 'K') line = line.slice(0, col);
        i += (m?.[0].length ?? 1) - 1;
      } else {
        line = line.slice(0, col) + c + line.slice(col + 1);
        col++;
      }
    }
    out.push(line);
  }
  return out;
}

/** The netreplay CLI in a pseudo-terminal; after it exits, its status and `stty -a`. */
class Terminal {
  readonly child: ChildProcess;
  raw = '';
  readonly exited: Promise<void>;
  /** The exit code of `script`, once it has exited. */
  exitCode: number | null = null;
  stderr = '';
  /** When the program first showed anything (Date.now()), or null. */
  firstOutputAt: number | null = null;

  constructor(args: string[], env: NodeJS.ProcessEnv = {}) {
    const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const command = `'${process.execPath}' --import=tsx '${cli}' ${quoted}; echo "[exit $?]"; stty -a`;
    this.child = spawn('script', ['-qfec', command, '/dev/null'], {
      cwd: root,
      env: { ...process.env, TERM: 'xterm', NO_COLOR: '', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.firstOutputAt ??= Date.now();
      this.raw += d;
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    // Generous: see waitFor.
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 150_000);
    this.exited = new Promise((resolve) =>
      this.child.on('close', (code) => {
        clearTimeout(timer);
        this.exitCode = code;
        resolve();
      }),
    );
  }

  get lines(): string[] {
    return screen(this.raw);
  }

  /** The last status line shown. */
  get status(): string {
    return [...this.lines].reverse().find((l) => /delivered \d+/.test(l) && !l.includes('messages in')) ?? '';
  }

  press(keys: string): void {
    this.child.stdin!.write(keys);
  }

  /**
   * Wait for `what`: up to 90 s while the program has shown nothing (its start
   * can be that slow on a loaded 2-core machine), then `ms` from its first
   * output or from this call, whichever is later. The screen is tested once
   * more after the deadline, so output that came just then still counts.
   */
  async waitFor(what: RegExp, where: 'status' | 'screen' = 'screen', ms = 20_000): Promise<void> {
    const start = Date.now();
    const shown = () => what.test(where === 'status' ? this.status : this.lines.join('\n'));
    const deadline = () =>
      this.firstOutputAt === null ? start + Math.max(ms, 90_000) : Math.max(start, this.firstOutputAt) + ms;
    while (Date.now() < deadline() && this.exitCode === null) {
      if (shown()) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    if (shown()) return;
    const state = this.exitCode === null ? 'still running' : `exited with ${this.exitCode}`;
    throw new Error(
      `no ${what} on the ${where} within ${Date.now() - start} ms (${this.raw.length} bytes shown, script ${state}` +
        `${this.stderr ? `, its stderr: ${this.stderr.trim()}` : ''}); it shows:\n${this.lines.slice(-15).join('\n')}`,
    );
  }

  async end(): Promise<{ code: number; stty: string }> {
    await this.exited;
    const text = this.lines.join('\n');
    const code = Number(/\[exit (\d+)\]/.exec(text)?.[1] ?? NaN);
    return { code, stty: text.slice(text.indexOf('[exit')) };
  }
}

/** `stty -a` of a terminal in its usual (cooked) mode, not raw. */
function assertCooked(t: { regex(s: string, r: RegExp, m?: string): void; notRegex(s: string, r: RegExp, m?: string): void }, stty: string) {
  t.regex(stty, /(^|\s)icanon(\s|$)/m, 'canonical input restored');
  t.regex(stty, /(^|\s)echo(\s|$)/m, 'echo restored');
  t.regex(stty, /(^|\s)isig(\s|$)/m, 'signals restored');
  t.notRegex(stty, /-icanon|(^|\s)-echo(\s|$)/m);
}

/** 10 messages 0.1 s apart, a sparse stretch of 2.1 s, 10 more. */
function sparseLog(dir: string): string {
  const records = [
    ...Array.from({ length: 10 }, (_, i) => ({ t: i / 10, topic: '/x', payload: { i } })),
    ...Array.from({ length: 10 }, (_, i) => ({ t: 3 + i / 10, topic: '/x', payload: { i: 10 + i } })),
  ];
  return writeLog(join(dir, 'sparse.log'), records, 'T');
}

ptyTest('the status line shows state, position, loop, speed and counts, and is redrawn through a sparse stretch', async (t) => {
  const term = new Terminal(['play', sparseLog(tempDir(t)), '--no-keys']);
  await term.waitFor(/delivered 10\b/, 'status');
  const before = term.raw.split('\r').length;
  await new Promise((r) => setTimeout(r, 1000));
  // About five redraws a second while nothing is delivered.
  const redraws = term.raw.split('\r').length - before;
  t.true(redraws >= 3, `${redraws} redraws in 1 s of the sparse stretch`);
  t.regex(term.status, /^playing\s+[\d.]+ \/ 3\.900 s\s+\d+\.\d %  loop off  ×1\.00  delivered 10  dropped 0  late p99 [\d.]+ (µs|ms)$/);
  const { code, stty } = await term.end();
  t.is(code, 0);
  t.regex(term.lines.join('\n'), /ended\s+3\.900 \/ 3\.900 s\s+100\.0 %.*delivered 20/);
  t.regex(term.lines.join('\n'), /netreplay: 20 messages in [\d.]+ s/);
  assertCooked(t, stty);
});

ptyTest('keys: space pauses and resumes, → steps, ↑/↓ change the speed, shift+← seeks back, l loops, q quits', async (t) => {
  const term = new Terminal(['play', sparseLog(tempDir(t))]);
  await term.waitFor(/keys: space pause\/resume · → step/);
  await term.waitFor(/delivered 10\b/, 'status');
  term.press(KEYS.space);
  await term.waitFor(/^paused/, 'status');
  term.press(KEYS.right);
  await term.waitFor(/delivered 11\b/, 'status');
  t.true(term.lines.some((l) => /^\s+3\.000000\s+"\/x"\s+T\s+\{"i":10\}$/.test(l)), 'the stepped message is printed');
  t.regex(term.status, /^paused/);
  term.press(KEYS.up);
  await term.waitFor(/×1\.25/, 'status');
  term.press(KEYS.down + KEYS.down);
  await term.waitFor(/×0\.80/, 'status');
  // Back 5 s from 3.0 s: to the first message, which the next step prints again.
  term.press(KEYS.shiftLeft);
  await new Promise((r) => setTimeout(r, 300));
  term.press(KEYS.right);
  await term.waitFor(/\n\s+0\.000000\s+"\/x"\s+T\s+\{"i":0\}\n(?:.*\n)*?paused\s+0\.000 \/ 3\.900 s.*delivered 12\b/);
  term.press('l');
  await term.waitFor(/loop 1\/∞/, 'status');
  term.press('l');
  await term.waitFor(/loop off/, 'status');
  term.press('q');
  const { code, stty } = await term.end();
  t.is(code, 0);
  assertCooked(t, stty);
});

ptyTest('Ctrl-C quits with 130 and restores the terminal', async (t) => {
  const term = new Terminal(['play', sparseLog(tempDir(t)), '--loop']);
  await term.waitFor(/delivered [1-9]/, 'status');
  term.press(KEYS.ctrlC);
  const { code, stty } = await term.end();
  t.is(code, 130);
  t.regex(term.lines.join('\n'), /netreplay: \d+ messages in/);
  assertCooked(t, stty);
});

ptyTest('an error in the middle of a replay exits 1, says where, and restores the terminal', async (t) => {
  const dir = tempDir(t);
  const bad = writeLog(join(dir, 'bad.log'), [{ t: 0, payload: 1 }, { t: 0.2, payload: 2 }], 'T');
  writeFileSync(bad, "     0.40000    ''          zz\n", { flag: 'a' });
  const term = new Terminal(['play', bad]);
  const { code, stty } = await term.end();
  t.is(code, 1);
  t.regex(term.lines.join('\n'), /netreplay: .*bad\.log:\d+: /);
  assertCooked(t, stty);
});

ptyTest('--start-paused waits for space; --no-keys ignores keys; --no-progress shows no status line', async (t) => {
  const log = sparseLog(tempDir(t));
  const paused = new Terminal(['play', log, '--start-paused', '--speed', '4']);
  await paused.waitFor(/^paused\s+- \/ 3\.900 s/, 'status');
  t.regex(paused.status, /delivered 0\b/);
  paused.press(KEYS.space);
  t.is((await paused.end()).code, 0);
  t.regex(paused.lines.join('\n'), /netreplay: 20 messages/);

  const noKeys = new Terminal(['play', log, '--no-keys', '--speed', '4']);
  await noKeys.waitFor(/delivered [1-9]/, 'status');
  noKeys.press('q');
  t.is((await noKeys.end()).code, 0);
  t.regex(noKeys.lines.join('\n'), /netreplay: 20 messages/, 'q did not quit');

  const quiet = new Terminal(['play', log, '--no-progress', '--speed', '4']);
  const { code, stty } = await quiet.end();
  t.is(code, 0);
  t.false(quiet.lines.some((l) => /delivered \d+  dropped/.test(l)));
  assertCooked(t, stty);
});

ptyTest('the status line is coloured unless NO_COLOR is set', async (t) => {
  const log = sparseLog(tempDir(t));
  const coloured = new Terminal(['play', log, '--speed', 'inf', '--no-keys']);
  await coloured.end();
  t.regex(coloured.raw, /\x1b\[36mended/);
  const plain = new Terminal(['play', log, '--speed', 'inf', '--no-keys'], { NO_COLOR: '1' });
  await plain.end();
  t.notRegex(plain.raw, /\x1b\[\d+m/);
  t.regex(plain.raw, /ended/);
});
