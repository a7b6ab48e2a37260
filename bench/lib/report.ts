// Report output as plain strings: GitHub-flavoured Markdown tables and
// self-contained SVG charts (empirical lateness CDFs, horizontal bars).

/** Escape text for XML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => XML_ENTITIES[c]!);
}
const XML_ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** A number for people: about 3–4 significant digits, integers kept whole; '–' for NaN/±Infinity. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return '–';
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1000) return value.toFixed(0);
  if (abs >= 100) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  if (abs === 0) return '0';
  return value.toPrecision(3);
}

function markdownCell(cell: string | number): string {
  const text = typeof cell === 'number' ? formatNumber(cell) : cell;
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, '<br>');
}

/** A GitHub-flavoured Markdown table; columns whose cells are all numbers are right-aligned. */
export function markdownTable(header: string[], rows: (string | number)[][]): string {
  const columns = Math.max(header.length, ...rows.map((r) => r.length));
  const numeric = Array.from({ length: columns }, (_, c) => rows.length > 0 && rows.every((r) => r[c] === undefined || typeof r[c] === 'number'));
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const pad = (cells: (string | number)[]) => Array.from({ length: columns }, (_, c) => markdownCell(cells[c] ?? ''));
  return [
    line(pad(header)),
    line(numeric.map((right) => (right ? '---:' : '---'))),
    ...rows.map((r) => line(pad(r))),
  ].join('\n') + '\n';
}

// Tableau 10: distinct and legible on white.
const COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
const DASHES = ['', '6 3', '2 2', '8 3 2 3'];
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

/** Coordinate text; never NaN/Infinity in the output even if a caller's value is. */
function n(x: number): string {
  return Number.isFinite(x) ? String(Math.round(x * 10) / 10) : '0';
}

function text(x: number, y: number, content: string, attrs = ''): string {
  return `<text x="${n(x)}" y="${n(y)}"${attrs ? ' ' + attrs : ''}>${escapeXml(content)}</text>`;
}

function line(x1: number, y1: number, x2: number, y2: number, attrs: string): string {
  return `<line x1="${n(x1)}" y1="${n(y1)}" x2="${n(x2)}" y2="${n(y2)}" ${attrs}/>`;
}

function svgOpen(width: number, height: number, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    text(width / 2, 22, title, 'text-anchor="middle" font-size="15" font-weight="600"'),
  ];
}

/** A µs duration in the largest unit that keeps it ≥ 1 (µs, ms, s); `exact` for round tick values. */
function durationLabelUs(us: number, exact = false): string {
  const [value, unit] = us >= 1e6 ? [us / 1e6, 's'] : us >= 1e3 ? [us / 1e3, 'ms'] : [us, 'µs'];
  return `${exact ? String(Number(value.toPrecision(12))) : formatNumber(value)} ${unit}`;
}

/**
 * Indices of a sorted series to draw: evenly spaced by rank, plus a geometric
 * run towards the top so the tail (p99.9, max) keeps its shape; always the
 * first and the last (the max).
 */
function sampleIndices(length: number, maxPoints: number): number[] {
  if (length <= maxPoints) return Array.from({ length }, (_, i) => i);
  const picked = new Set<number>([0, length - 1]);
  const uniform = Math.floor(maxPoints * 0.75);
  for (let k = 0; k < uniform; k++) picked.add(Math.round((k * (length - 1)) / (uniform - 1)));
  const tail = maxPoints - picked.size;
  for (let k = 0; k < tail; k++) picked.add(length - 1 - Math.round(Math.pow(length - 1, k / tail)) + 1);
  return [...picked].filter((i) => i >= 0 && i < length).sort((a, b) => a - b);
}

/** 1 − 10^−k written as 0, 0.9, 0.99, … */
function tailLabel(fraction: number): string {
  const nines = Math.round(-Math.log10(Math.max(1 - fraction, 1e-12)));
  return nines === 0 ? '0' : `0.${'9'.repeat(nines)}`;
}

export interface CdfSeries {
  name: string;
  /** Ascending-sorted values in µs (e.g. from `latenessUs`). NaNs are ignored. */
  sortedUs: ArrayLike<number>;
}

export interface CdfOptions {
  title: string;
  series: CdfSeries[];
  xLabel?: string;
  /**
   * 'linear' (default): y = fraction ≤ x from 0 to 1. 'tail': y = −log10(1 − fraction),
   * so 0.9, 0.99, 0.999 … are evenly spaced and the tail is readable.
   */
  yScale?: 'linear' | 'tail';
}

const CDF_MIN_US = 0.1;
const CDF_MAX_POINTS = 2000;

/** Empirical CDF per series on a log µs axis (0.1 µs … at least 100 ms). */
export function cdfSvg(opts: CdfOptions): string {
  const width = 720;
  const height = 420;
  const left = 64;
  const right = 176; // legend column
  const top = 40;
  const bottom = 62;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const tail = opts.yScale === 'tail';

  const series = opts.series.map((s) => {
    const values: number[] = [];
    for (let i = 0; i < s.sortedUs.length; i++) {
      const v = s.sortedUs[i]!;
      if (!Number.isNaN(v)) values.push(v);
    }
    return { name: s.name, values };
  });

  let dataMax = 0;
  let clamped = 0;
  let maxCount = 1;
  for (const s of series) {
    const last = s.values.at(-1);
    if (last !== undefined && Number.isFinite(last)) dataMax = Math.max(dataMax, last);
    for (const v of s.values) if (v <= CDF_MIN_US) clamped++;
    maxCount = Math.max(maxCount, s.values.length);
  }
  const minDecade = Math.log10(CDF_MIN_US);
  // At least 100 ms; widen by whole decades (up to 1000 s) rather than hide a slow tail.
  const maxDecade = Math.min(9, Math.max(5, Math.ceil(Math.log10(Math.max(dataMax, 1)))));
  const xOf = (us: number) => {
    const d = Math.log10(Math.min(Math.max(us, CDF_MIN_US), 10 ** maxDecade));
    return left + ((d - minDecade) / (maxDecade - minDecade)) * plotW;
  };

  // Tail scale: top at 1 − 10^−k with k from the largest series, so its max is visible.
  const tailDecades = Math.min(6, Math.max(2, Math.ceil(Math.log10(maxCount))));
  const yOf = (fraction: number) => {
    const f = Math.min(1, Math.max(0, fraction));
    const u = tail ? Math.min(tailDecades, -Math.log10(Math.max(1 - f, 10 ** -tailDecades))) / tailDecades : f;
    return top + plotH - u * plotH;
  };

  const out = svgOpen(width, height, opts.title);
  out.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#444"/>`);

  // X grid: decades labelled, 2…9 as faint minor lines.
  for (let d = Math.round(minDecade); d <= maxDecade; d++) {
    const us = 10 ** d;
    const x = xOf(us);
    if (d > minDecade && d < maxDecade) out.push(line(x, top, x, top + plotH, 'stroke="#ccc"'));
    out.push(line(x, top + plotH, x, top + plotH + 5, 'stroke="#444"'));
    out.push(text(x, top + plotH + 18, durationLabelUs(us, true), 'text-anchor="middle"'));
    if (d < maxDecade) {
      for (let m = 2; m <= 9; m++) {
        const xm = xOf(m * us);
        out.push(line(xm, top, xm, top + plotH, 'stroke="#eee"'));
      }
    }
  }

  // Y grid.
  const yTicks = tail
    ? Array.from({ length: tailDecades + 1 }, (_, k) => 1 - 10 ** -k)
    : [0, 0.25, 0.5, 0.75, 0.9, 0.99, 1];
  for (const f of yTicks) {
    const y = yOf(f);
    const strong = f === 0.5 || f === 0.9 || f === 0.99;
    if (f > 0 && f < 1) out.push(line(left, y, left + plotW, y, `stroke="${strong ? '#bbb' : '#e4e4e4'}"${strong ? ' stroke-dasharray="4 3"' : ''}`));
    out.push(line(left - 5, y, left, y, 'stroke="#444"'));
    // On the linear scale 0.99 sits on top of 1: label it inside the plot instead.
    if (!tail && f === 0.99) out.push(text(left + plotW - 4, y + 12, '0.99', 'text-anchor="end" font-size="10" fill="#666" stroke="#fff" stroke-width="3" paint-order="stroke"'));
    else out.push(text(left - 8, y + 4, tail ? tailLabel(f) : String(f), 'text-anchor="end"'));
  }

  out.push(text(left + plotW / 2, height - 26, opts.xLabel ?? 'lateness (log scale)', 'text-anchor="middle"'));
  out.push(text(16, top + plotH / 2, tail ? 'fraction ≤ x (tail scale)' : 'fraction ≤ x', `text-anchor="middle" transform="rotate(-90 16 ${n(top + plotH / 2)})"`));
  if (clamped > 0) {
    out.push(text(left, height - 8, `${clamped} value(s) ≤ ${CDF_MIN_US} µs (incl. early arrivals) drawn at ${CDF_MIN_US} µs`, 'font-size="10" fill="#666"'));
  }

  // Series: a right-continuous staircase through the sampled points.
  series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length]!;
    const dash = DASHES[Math.floor(k / COLORS.length) % DASHES.length]!;
    const count = s.values.length;
    const parts: string[] = [];
    if (count > 0) {
      const indices = sampleIndices(count, CDF_MAX_POINTS);
      let prevY = yOf(0);
      indices.forEach((i, j) => {
        const x = xOf(s.values[i]!);
        const y = yOf((i + 1) / count);
        parts.push(j === 0 ? `M${n(x)} ${n(prevY)}V${n(y)}` : `H${n(x)}V${n(y)}`);
        prevY = y;
      });
    }
    const dashAttr = dash ? ` stroke-dasharray="${dash}"` : '';
    out.push(`<path class="series" d="${parts.join('')}" fill="none" stroke="${color}" stroke-width="1.6"${dashAttr}><title>${escapeXml(s.name)}</title></path>`);

    const ly = top + 10 + k * Math.min(34, plotH / Math.max(1, series.length));
    const lx = left + plotW + 14;
    out.push(line(lx, ly, lx + 22, ly, `stroke="${color}" stroke-width="2.5"${dashAttr}`));
    out.push(text(lx + 28, ly + 4, s.name, 'class="legend"'));
    const summary = count === 0 ? 'no data' : `n=${count}, max ${durationLabelUs(s.values[count - 1]!)}`;
    out.push(text(lx + 28, ly + 18, summary, 'font-size="10" fill="#666"'));
  });

  out.push('</svg>');
  return out.join('\n') + '\n';
}

export interface BarOptions {
  title: string;
  unit: string;
  bars: { name: string; value: number; target?: number }[];
}

/** Horizontal bars with value labels; `target` draws a dashed marker across that bar's row. */
export function barSvg(opts: BarOptions): string {
  const width = 720;
  const rowH = 30;
  const top = 44;
  const bottom = 40;
  const longestName = Math.max(0, ...opts.bars.map((b) => b.name.length));
  const left = Math.min(300, Math.max(90, 14 + longestName * 7));
  const right = 90; // room for the value label past the longest bar
  const plotW = width - left - right;
  const height = top + Math.max(1, opts.bars.length) * rowH + bottom;

  const finite = (x: number | undefined): x is number => x !== undefined && Number.isFinite(x);
  const extent = opts.bars.flatMap((b) => [b.value, b.target]).filter(finite);
  const lo = Math.min(0, ...extent);
  let hi = Math.max(0, ...extent);
  if (hi === lo) hi = lo + 1;
  const xOf = (v: number) => left + ((v - lo) / (hi - lo)) * plotW;
  const zeroX = xOf(0);

  const out = svgOpen(width, height, opts.title);
  const plotBottom = top + Math.max(1, opts.bars.length) * rowH;

  // Value axis: ~5 round ticks.
  const step = niceStep((hi - lo) / 5);
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    const x = xOf(v);
    out.push(line(x, top - 4, x, plotBottom, 'stroke="#eee"'));
    out.push(text(x, plotBottom + 16, formatNumber(Number(v.toPrecision(12))), 'text-anchor="middle" font-size="11" fill="#444"'));
  }
  out.push(line(zeroX, top - 4, zeroX, plotBottom, 'stroke="#444"'));
  out.push(text(left + plotW / 2, height - 8, opts.unit, 'text-anchor="middle"'));

  opts.bars.forEach((b, k) => {
    const yMid = top + k * rowH + rowH / 2;
    const color = COLORS[k % COLORS.length]!;
    out.push(text(left - 8, yMid + 4, b.name, 'text-anchor="end" class="legend"'));
    if (finite(b.value)) {
      const x = xOf(b.value);
      const x0 = Math.min(x, zeroX);
      const w = Math.abs(x - zeroX);
      out.push(`<rect class="bar" x="${n(x0)}" y="${n(yMid - rowH * 0.32)}" width="${n(w)}" height="${n(rowH * 0.64)}" fill="${color}"><title>${escapeXml(`${b.name}: ${formatNumber(b.value)} ${opts.unit}`)}</title></rect>`);
      const label = formatNumber(b.value);
      let anchorX = b.value >= 0 ? Math.max(x, zeroX) + 5 : Math.min(x, zeroX) - 5;
      // Step past a target marker that the label would cover (~6.5 px per character at 11 px).
      if (finite(b.target) && b.value >= 0) {
        const tx = xOf(b.target);
        if (tx >= anchorX - 3 && tx <= anchorX + label.length * 6.5 + 3) anchorX = tx + 5;
      }
      out.push(text(anchorX, yMid + 4, label, `text-anchor="${b.value >= 0 ? 'start' : 'end'}" font-size="11"`));
    } else {
      out.push(text(zeroX + 5, yMid + 4, 'n/a', 'font-size="11" fill="#666"'));
    }
    if (finite(b.target)) {
      const tx = xOf(b.target);
      out.push(`<line class="target" x1="${n(tx)}" y1="${n(yMid - rowH / 2 + 2)}" x2="${n(tx)}" y2="${n(yMid + rowH / 2 - 2)}" stroke="#222" stroke-width="2" stroke-dasharray="3 2"><title>${escapeXml(`target ${formatNumber(b.target)} ${opts.unit}`)}</title></line>`);
    }
  });

  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** 1, 2 or 5 × 10^k closest above `raw`. */
function niceStep(raw: number): number {
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

export interface ScatterOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Log-scale y axis (decades; values ≤ 0 are drawn at the bottom). */
  logY?: boolean;
  series: { name: string; points: [number, number][] }[];
}

/** Points per series (one marker shape and colour each), linear x from 0, linear or log y. */
export function scatterSvg(opts: ScatterOptions): string {
  const width = 760;
  const height = 440;
  const left = 70;
  const right = 230; // legend column
  const top = 40;
  const bottom = 56;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const xs = opts.series.flatMap((s) => s.points.map((p) => p[0])).filter(Number.isFinite);
  const ys = opts.series.flatMap((s) => s.points.map((p) => p[1])).filter((y) => Number.isFinite(y) && (!opts.logY || y > 0));
  const xStep = niceStep(Math.max(1, ...xs) / 5);
  const xMax = Math.max(xStep, Math.ceil(Math.max(1, ...xs) / xStep) * xStep);
  const xOf = (x: number) => left + (Math.max(0, Math.min(x, xMax)) / xMax) * plotW;
  let yOf: (y: number) => number;
  const yTicks: number[] = [];
  if (opts.logY) {
    const lo = Math.floor(Math.log10(Math.min(...ys, 10)));
    const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...ys, 10))));
    yOf = (y) => top + plotH - ((Math.log10(Math.max(y, 10 ** lo)) - lo) / (hi - lo)) * plotH;
    for (let d = lo; d <= hi; d++) yTicks.push(10 ** d);
  } else {
    const yStep = niceStep(Math.max(1, ...ys) / 5);
    const yMax = Math.ceil(Math.max(1, ...ys) / yStep) * yStep;
    yOf = (y) => top + plotH - (Math.max(0, Math.min(y, yMax)) / yMax) * plotH;
    for (let v = 0; v <= yMax + yStep * 1e-9; v += yStep) yTicks.push(v);
  }
  const out = svgOpen(width, height, opts.title);
  out.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#444"/>`);
  for (let v = 0; v <= xMax + xStep * 1e-9; v += xStep) {
    const x = xOf(v);
    out.push(line(x, top, x, top + plotH, 'stroke="#eee"'));
    out.push(text(x, top + plotH + 16, formatNumber(Number(v.toPrecision(12))), 'text-anchor="middle" font-size="11"'));
  }
  for (const v of yTicks) {
    const y = yOf(v);
    out.push(line(left, y, left + plotW, y, 'stroke="#e4e4e4"'));
    out.push(text(left - 6, y + 4, opts.logY ? durationLabelUs(v, true) : formatNumber(v), 'text-anchor="end" font-size="11"'));
  }
  out.push(text(left + plotW / 2, height - 16, opts.xLabel, 'text-anchor="middle"'));
  out.push(text(14, top + plotH / 2, opts.yLabel, `text-anchor="middle" transform="rotate(-90 14 ${n(top + plotH / 2)})"`));
  const marker = (k: number, x: number, y: number, color: string, title: string) => {
    const t = `<title>${escapeXml(title)}</title>`;
    switch (Math.floor(k / COLORS.length) % 2 === 0 ? k % 3 : (k + 1) % 3) {
      case 0:
        return `<circle class="point" cx="${n(x)}" cy="${n(y)}" r="4.5" fill="${color}" fill-opacity="0.8">${t}</circle>`;
      case 1:
        return `<rect class="point" x="${n(x - 4)}" y="${n(y - 4)}" width="8" height="8" fill="${color}" fill-opacity="0.8">${t}</rect>`;
      default:
        return `<path class="point" d="M${n(x)} ${n(y - 5)}L${n(x + 5)} ${n(y + 4)}L${n(x - 5)} ${n(y + 4)}Z" fill="${color}" fill-opacity="0.8">${t}</path>`;
    }
  };
  opts.series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length]!;
    for (const [x, y] of s.points) {
      if (Number.isFinite(x) && Number.isFinite(y)) out.push(marker(k, xOf(x), yOf(y), color, `${s.name}: ${formatNumber(x)}, ${formatNumber(y)}`));
    }
    const ly = top + 10 + k * Math.min(28, plotH / Math.max(1, opts.series.length));
    out.push(marker(k, left + plotW + 20, ly, color, s.name));
    out.push(text(left + plotW + 32, ly + 4, s.name, 'class="legend" font-size="11"'));
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
