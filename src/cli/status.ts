// The live status line of `play` on a terminal, and the numbers it shows.
import type { Progress } from '../replay.js';

export interface StatusSample {
  progress: Progress;
  /** The pass and whether it loops, as the command line knows it (the `l` key changes it). */
  loop: string;
  udp: { sent: number; failed: number } | null;
  /** Lateness p99 in seconds (handover, or UDP send with a UDP sink), over the run. */
  lateP99: number;
}

const STATE_LABELS: Record<Progress['state'], string> = {
  idle: 'idle',
  playing: 'playing',
  delayed: 'delayed',
  paused: 'paused',
  ended: 'ended',
  closed: 'ended',
};

// SGR colours per state; none with NO_COLOR (https://no-color.org).
const STATE_COLOURS: Record<Progress['state'], string> = {
  idle: '2',
  playing: '32',
  delayed: '33',
  paused: '33',
  ended: '36',
  closed: '36',
};

export function formatSeconds(s: number | null): string {
  return s === null ? '-' : s.toFixed(3);
}

export function formatSpeed(speed: number): string {
  return speed === Infinity ? '×inf' : `×${speed < 10 ? speed.toFixed(2) : speed.toPrecision(3)}`;
}

export function formatMicros(s: number): string {
  const us = s * 1e6;
  return us < 1000 ? `${us.toFixed(1)} µs` : `${(us / 1000).toFixed(2)} ms`;
}

/** One line: state, position / end and percent, loop, speed, counts, lateness. */
export function formatStatus(sample: StatusSample, colour: boolean): string {
  const p = sample.progress;
  const state = STATE_LABELS[p.state];
  const stateText = colour ? `\x1b[${STATE_COLOURS[p.state]}m${state.padEnd(7)}\x1b[0m` : state.padEnd(7);
  const percent = p.fraction === null ? '' : ` ${(p.fraction * 100).toFixed(1).padStart(5)} %`;
  const parts = [
    stateText,
    `${formatSeconds(p.position)} / ${formatSeconds(p.end)} s${percent}`,
    sample.loop,
    formatSpeed(p.speed),
    `delivered ${p.delivered}`,
    `dropped ${p.dropped}`,
    ...(sample.udp ? [`udp ${sample.udp.sent} sent ${sample.udp.failed} failed`] : []),
    `late p99 ${formatMicros(sample.lateP99)}`,
  ];
  return parts.join('  ');
}

/**
 * Keeps one line at the bottom of a terminal: message lines written with
 * `print` go above it, and `update` redraws it in place.
 */
export class StatusLine {
  readonly #out: NodeJS.WriteStream;
  #shown = '';

  constructor(out: NodeJS.WriteStream) {
    this.#out = out;
  }

  /** Writes `text` (whole lines) to `stream` above the status line. */
  print(stream: NodeJS.WritableStream, text: string): void {
    if (this.#shown) this.#out.write('\r\x1b[K');
    stream.write(text);
    if (this.#shown) this.#out.write(this.#fit(this.#shown));
  }

  update(line: string): void {
    this.#shown = line;
    this.#out.write(`\r\x1b[K${this.#fit(line)}`);
  }

  /** Leaves the last line shown and moves below it. */
  finish(): void {
    if (this.#shown) this.#out.write('\n');
    this.#shown = '';
  }

  // A line wider than the terminal would wrap, and \r would redraw only its last row.
  #fit(line: string): string {
    const width = this.#out.columns || 120;
    let visible = 0;
    let out = '';
    for (let i = 0; i < line.length; i++) {
      if (line[i] === '\x1b') {
        const end = line.indexOf('m', i);
        out += line.slice(i, end + 1);
        i = end;
        continue;
      }
      if (visible >= width - 1) break;
      out += line[i];
      visible++;
    }
    return out;
  }
}
