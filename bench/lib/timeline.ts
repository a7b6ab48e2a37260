// The ideal timelines of the playback-control features, as the engine's
// documentation defines them, for bench/timeline.ts to measure arrivals
// against: loops (seams one mean gap apart), capped gaps (maxGap) and fixed
// rates. Pure functions; times in ns from the origin (log time 0 due).

/**
 * One pass's period: span + mean gap + loopDelay; the next pass's first
 * record is due one mean gap after the last. The mean gap is span / (n − 1)
 * in whole ns, truncated, as core computes it.
 */
export function loopPeriodNs(timesNs: ArrayLike<number>, loopDelayNs = 0): number {
  const n = timesNs.length;
  if (n === 0) return loopDelayNs;
  const span = timesNs[n - 1]! - timesNs[0]!;
  const gap = n >= 2 ? Math.trunc(span / (n - 1)) : 0;
  return span + gap + loopDelayNs;
}

/** Record i of pass k is due at k·period + t_i: index k·n + i. */
export function loopTimelineNs(timesNs: ArrayLike<number>, passes: number, loopDelayNs = 0): Float64Array {
  const n = timesNs.length;
  const period = loopPeriodNs(timesNs, loopDelayNs);
  const out = new Float64Array(n * passes);
  for (let k = 0; k < passes; k++) for (let i = 0; i < n; i++) out[k * n + i] = k * period + timesNs[i]!;
  return out;
}

/**
 * The pass of each datagram, in arrival order, for a log that numbers its
 * records 0…count−1 and is played several times: the j-th arrival of record
 * i is from pass j (loopback keeps one sender's order; a lost datagram
 * shifts no other record's pass). Indices ≥ count get −1.
 */
export function passesOf(seq: ArrayLike<number>, count: number): Int32Array {
  const seen = new Uint32Array(count);
  const out = new Int32Array(seq.length);
  for (let k = 0; k < seq.length; k++) {
    const i = seq[k]!;
    out[k] = i < count ? seen[i]!++ : -1;
  }
  return out;
}

export interface SeamLateness {
  /** µs, the first `after` records of passes 1… (just after a seam). */
  afterSeam: Float64Array;
  /** µs, the first `after` records of pass 0 (the start). */
  start: Float64Array;
  /** µs, every other record. */
  elsewhere: Float64Array;
}

/**
 * Lateness (arrival − (origin + timeline)) of each datagram of a looped
 * replay, split by where it falls in its pass. `timelineNs` is indexed
 * k·count + i (loopTimelineNs); datagrams beyond `timelineNs` are ignored.
 */
export function seamLateness(
  seq: ArrayLike<number>,
  rxNs: ArrayLike<number>,
  count: number,
  timelineNs: ArrayLike<number>,
  originNs: number,
  after = 5,
): SeamLateness {
  const pass = passesOf(seq, count);
  const groups = { afterSeam: [] as number[], start: [] as number[], elsewhere: [] as number[] };
  for (let k = 0; k < seq.length; k++) {
    const i = seq[k]!;
    const p = pass[k]!;
    const at = p * count + i;
    if (p < 0 || at >= timelineNs.length) continue;
    const late = (rxNs[k]! - originNs - timelineNs[at]!) / 1000;
    (i < after ? (p === 0 ? groups.start : groups.afterSeam) : groups.elsewhere).push(late);
  }
  return { afterSeam: Float64Array.from(groups.afterSeam), start: Float64Array.from(groups.start), elsewhere: Float64Array.from(groups.elsewhere) };
}

/** The timeline with every gap between consecutive records capped at `maxGapNs`, from t_0. */
export function cappedTimelineNs(timesNs: ArrayLike<number>, maxGapNs: number): Float64Array {
  const out = new Float64Array(timesNs.length);
  for (let i = 0; i < timesNs.length; i++) {
    out[i] = i === 0 ? timesNs[0]! : out[i - 1]! + Math.min(timesNs[i]! - timesNs[i - 1]!, maxGapNs);
  }
  return out;
}

/** The records after a gap the cap shortens: i with t_i − t_{i−1} > maxGapNs. */
export function cappedGapIndices(timesNs: ArrayLike<number>, maxGapNs: number): number[] {
  const out: number[] = [];
  for (let i = 1; i < timesNs.length; i++) if (timesNs[i]! - timesNs[i - 1]! > maxGapNs) out.push(i);
  return out;
}

/** A fixed rate: record n is due n / perSecond s after the first, whatever its logged time. */
export function fixedRateTimelineNs(count: number, perSecond: number): Float64Array {
  return Float64Array.from({ length: count }, (_, n) => Math.round((n * 1e9) / perSecond));
}
