// Timing-fidelity statistics for a replayed schedule: lateness of each arrival
// against its deadline, start/end offsets and drift, inter-arrival error.

export interface TimingInput {
  /** Schedule time of record i, ns relative to schedule start (non-decreasing; equal values = a burst). */
  scheduleNs: ArrayLike<number>;
  /** Arrival time of record i on CLOCK_MONOTONIC, ns; NaN when record i never arrived. */
  arrivalNs: ArrayLike<number>;
  /** CLOCK_MONOTONIC ns at which schedule time 0 was due (the contender's origin). */
  originNs: number;
  /** Received records averaged for the start/end offsets (default min(1000, ceil(received/10))). */
  window?: number;
}

export interface Distribution {
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export interface TimingStats {
  /** Records in the schedule. */
  count: number;
  received: number;
  lost: number;
  /** lateness = arrival − (origin + schedule), in µs, over received records. */
  latenessUs: Distribution;
  /** Mean lateness of the first `window` received records, µs. */
  startOffsetUs: number;
  /** Mean lateness of the last `window` received records, µs. */
  endOffsetUs: number;
  /** endOffset − startOffset, µs. */
  driftUs: number;
  /** |(a[i]−a[i−1]) − (s[i]−s[i−1])| in µs over consecutive pairs (i−1, i) both received. */
  interArrivalErrorUs: Distribution;
}

const EMPTY: Distribution = Object.freeze({ min: NaN, mean: NaN, p50: NaN, p90: NaN, p99: NaN, p999: NaN, max: NaN });

/** Nearest-rank percentile of an ascending-sorted array (q in [0,1]); NaN for empty. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0 || Number.isNaN(q)) return NaN;
  const x = Math.min(1, Math.max(0, q)) * n;
  let rank = Math.ceil(x);
  // q·n that should be an integer can land just above it (0.07·100 = 7.000000000000001).
  if (rank - 1 >= x - 1e-9 * Math.max(1, x)) rank -= 1;
  const index = Math.min(n - 1, Math.max(0, rank - 1));
  return sorted[index]!;
}

/** Summary of `values` (NaNs excluded); sorts a copy. All fields NaN when there are no values. */
export function distribution(values: ArrayLike<number>): Distribution {
  const sorted = sortedFinite(values);
  return distributionOfSorted(sorted);
}

function distributionOfSorted(sorted: Float64Array): Distribution {
  const n = sorted.length;
  if (n === 0) return { ...EMPTY };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i]!;
  return {
    min: sorted[0]!,
    mean: sum / n,
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    p999: percentile(sorted, 0.999),
    max: sorted[n - 1]!,
  };
}

function sortedFinite(values: ArrayLike<number>): Float64Array {
  const out = new Float64Array(values.length);
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isNaN(v)) out[n++] = v;
  }
  // Typed-array sort is numeric and far faster than Array#sort with a comparator.
  return out.subarray(0, n).sort();
}

function checkLengths(input: TimingInput): number {
  const n = input.scheduleNs.length;
  if (input.arrivalNs.length !== n) {
    throw new RangeError(`scheduleNs has ${n} records but arrivalNs has ${input.arrivalNs.length}`);
  }
  return n;
}

/** Lateness in µs per received record, in record order (unsorted). */
function latenessInOrder(input: TimingInput): Float64Array {
  const n = checkLengths(input);
  const { scheduleNs, arrivalNs, originNs } = input;
  const out = new Float64Array(n);
  let k = 0;
  for (let i = 0; i < n; i++) {
    const a = arrivalNs[i]!;
    if (!Number.isFinite(a)) continue;
    // Subtract the large absolute times first so the µs result keeps its precision.
    out[k++] = (a - originNs - scheduleNs[i]!) / 1000;
  }
  return out.subarray(0, k);
}

/** Sorted lateness values in µs over received records (for CDF plots). */
export function latenessUs(input: TimingInput): Float64Array {
  return latenessInOrder(input).sort();
}

function mean(values: Float64Array, from: number, to: number): number {
  if (to <= from) return NaN;
  let sum = 0;
  for (let i = from; i < to; i++) sum += values[i]!;
  return sum / (to - from);
}

/**
 * Timing statistics of one replay. A record counts as lost when its arrival is
 * not a finite number (NaN by convention).
 */
export function timingStats(input: TimingInput): TimingStats {
  const count = checkLengths(input);
  const { scheduleNs, arrivalNs } = input;
  const inOrder = latenessInOrder(input);
  const received = inOrder.length;

  const window = Math.min(received, Math.max(1, Math.floor(input.window ?? Math.min(1000, Math.ceil(received / 10)))));
  const startOffsetUs = mean(inOrder, 0, window);
  const endOffsetUs = mean(inOrder, received - window, received);

  const gapErrors = new Float64Array(Math.max(0, count - 1));
  let g = 0;
  for (let i = 1; i < count; i++) {
    const a0 = arrivalNs[i - 1]!;
    const a1 = arrivalNs[i]!;
    if (!Number.isFinite(a0) || !Number.isFinite(a1)) continue;
    gapErrors[g++] = Math.abs(a1 - a0 - (scheduleNs[i]! - scheduleNs[i - 1]!)) / 1000;
  }

  return {
    count,
    received,
    lost: count - received,
    latenessUs: distributionOfSorted(Float64Array.from(inOrder).sort()),
    startOffsetUs,
    endOffsetUs,
    driftUs: endOffsetUs - startOffsetUs,
    interArrivalErrorUs: distributionOfSorted(gapErrors.subarray(0, g).sort()),
  };
}

/**
 * Least-squares line y ≈ intercept + slope·x over the pairs where both are
 * finite (centred, so large absolute x keep their precision); NaNs with
 * fewer than two distinct x.
 */
export function linearFit(x: ArrayLike<number>, y: ArrayLike<number>): { slope: number; intercept: number; n: number } {
  if (x.length !== y.length) throw new RangeError(`x has ${x.length} values but y has ${y.length}`);
  let n = 0;
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]!) || !Number.isFinite(y[i]!)) continue;
    n++;
    sx += x[i]!;
    sy += y[i]!;
  }
  const mx = sx / n;
  const my = sy / n;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]!) || !Number.isFinite(y[i]!)) continue;
    const dx = x[i]! - mx;
    sxx += dx * dx;
    sxy += dx * (y[i]! - my);
  }
  if (n < 2 || sxx === 0) return { slope: NaN, intercept: NaN, n };
  const slope = sxy / sxx;
  return { slope, intercept: my - slope * mx, n };
}
