// Keys of `play` on a terminal: stdin in raw mode, restored on every way out.

export type KeyAction =
  | 'togglePause'
  | 'step'
  | 'faster'
  | 'slower'
  | 'seekBack'
  | 'seekForward'
  | 'toggleLoop'
  | 'quit'
  | 'interrupt';

export const KEY_HELP = 'keys: space pause/resume · → step · ↑/↓ speed ×/÷1.25 · shift+←/→ seek ∓5 s · l loop · q quit';

// Escape sequences of xterm-like terminals (and the application-mode variants).
const SEQUENCES: [string, KeyAction][] = [
  ['\x1b[1;2C', 'seekForward'],
  ['\x1b[1;2D', 'seekBack'],
  ['\x1b[C', 'step'],
  ['\x1bOC', 'step'],
  ['\x1b[A', 'faster'],
  ['\x1bOA', 'faster'],
  ['\x1b[B', 'slower'],
  ['\x1bOB', 'slower'],
  [' ', 'togglePause'],
  ['l', 'toggleLoop'],
  ['L', 'toggleLoop'],
  ['q', 'quit'],
  ['Q', 'quit'],
  ['\x03', 'interrupt'],
];

/** The actions in one chunk read from a raw terminal (keys typed fast arrive together). */
export function parseKeys(chunk: string): KeyAction[] {
  const actions: KeyAction[] = [];
  let i = 0;
  while (i < chunk.length) {
    const match = SEQUENCES.find(([seq]) => chunk.startsWith(seq, i));
    if (match) {
      actions.push(match[1]);
      i += match[0].length;
    } else if (chunk[i] === '\x1b') {
      // An escape sequence we do not use: skip it whole (ESC [ params final).
      const rest = /^\x1b(\[[0-9;]*[ -\/]*[@-~]|O.|.)?/.exec(chunk.slice(i));
      i += rest?.[0].length || 1;
    } else i++;
  }
  return actions;
}

/**
 * Reads keys from stdin in raw mode until `close()`. The terminal's mode is
 * restored by close(), and on process exit whatever ends it (an error, a
 * signal handler, process.exit).
 */
export class KeyReader {
  readonly #stdin: NodeJS.ReadStream;
  readonly #onData: (chunk: Buffer) => void;
  readonly #restore = () => this.close();
  #open = true;

  constructor(stdin: NodeJS.ReadStream, onAction: (action: KeyAction) => void) {
    this.#stdin = stdin;
    this.#onData = (chunk) => {
      for (const action of parseKeys(chunk.toString('utf8'))) onAction(action);
    };
    stdin.setRawMode(true);
    stdin.on('data', this.#onData);
    stdin.resume();
    process.on('exit', this.#restore);
  }

  close(): void {
    if (!this.#open) return;
    this.#open = false;
    process.off('exit', this.#restore);
    this.#stdin.off('data', this.#onData);
    if (this.#stdin.isTTY) this.#stdin.setRawMode(false);
    this.#stdin.pause();
  }
}
