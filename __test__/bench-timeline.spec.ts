// The ideal timelines bench/timeline.ts measures against, and the fit behind
// its drift figure: pure functions, no timing.
import test from 'ava';
import { linearFit } from '../bench/lib/stats.js';
import {
  cappedGapIndices,
  cappedTimelineNs,
  fixedRateTimelineNs,
  loopPeriodNs,
  loopTimelineNs,
  passesOf,
  seamLateness,
} from '../bench/lib/timeline.js';

const MS = 1e6;

test('loop timeline: pass k is k·(span + mean gap + loopDelay) later', (t) => {
  const times = [0, 1 * MS, 2 * MS, 4 * MS]; // span 4 ms, mean gap 4/3 ms: 1333333 ns, truncated as in core
  t.is(loopPeriodNs(times), 4 * MS + 1_333_333);
  t.is(loopPeriodNs(times, 10 * MS), 14 * MS + 1_333_333);
  const tl = loopTimelineNs(times, 3);
  t.is(tl.length, 12);
  t.deepEqual(Array.from(tl.subarray(0, 4)), times);
  const period = loopPeriodNs(times);
  t.deepEqual(Array.from(tl.subarray(8, 12)), times.map((x) => 2 * period + x));
  // A 1 kHz log of 1000 records: the next pass starts 1 ms after the last record, 1 s after the first.
  const steady = Array.from({ length: 1000 }, (_, i) => i * MS);
  t.is(loopPeriodNs(steady), 1000 * MS);
  t.is(loopTimelineNs(steady, 2)[1000], 1000 * MS);
  // One record: no gap to repeat.
  t.is(loopPeriodNs([5]), 0);
  t.is(loopPeriodNs([]), 0);
});

test('passesOf: the j-th arrival of a record is pass j; foreign indices are −1', (t) => {
  t.deepEqual(Array.from(passesOf([0, 1, 2, 0, 1, 2, 0], 3)), [0, 0, 0, 1, 1, 1, 2]);
  // A lost datagram (1 of pass 0) shifts no other record's pass, only its own.
  t.deepEqual(Array.from(passesOf([0, 2, 0, 1, 2], 3)), [0, 0, 1, 0, 1]);
  t.deepEqual(Array.from(passesOf([7, 0], 3)), [-1, 0]);
});

test('seamLateness: the first records of passes 1… are "after seam", of pass 0 "start"', (t) => {
  const times = [0, 1 * MS, 2 * MS, 3 * MS];
  const tl = loopTimelineNs(times, 2); // period 4 ms
  const origin = 1e12;
  const seq = [0, 1, 2, 3, 0, 1, 2, 3];
  // Every arrival (k·4 ms + t_i) late by (10·k + i) µs.
  const rx = seq.map((i, k) => origin + tl[k]! + (10 * Math.floor(k / 4) + i) * 1000);
  const split = seamLateness(seq, rx, 4, tl, origin, 2);
  t.deepEqual(Array.from(split.start), [0, 1]);
  t.deepEqual(Array.from(split.afterSeam), [10, 11]);
  t.deepEqual(Array.from(split.elsewhere), [2, 3, 12, 13]);
  // Datagrams beyond the passes timed are left out, not misplaced.
  const extra = seamLateness([...seq, 0], [...rx, origin], 4, tl, origin, 2);
  t.is(extra.afterSeam.length + extra.start.length + extra.elsewhere.length, 8);
});

test('capped timeline: only gaps longer than the cap shrink, to the cap', (t) => {
  const times = [0, 1 * MS, 2001 * MS, 2002 * MS, 2005 * MS, 4005 * MS];
  const tl = cappedTimelineNs(times, 5 * MS);
  t.deepEqual(Array.from(tl), [0, 1, 6, 7, 10, 15].map((x) => x * MS));
  t.deepEqual(cappedGapIndices(times, 5 * MS), [2, 5]);
  // A gap of exactly the cap is not capped.
  t.deepEqual(cappedGapIndices([0, 5 * MS], 5 * MS), []);
  // Starts at the first record's time.
  t.deepEqual(Array.from(cappedTimelineNs([3 * MS, 100 * MS], MS)), [3 * MS, 4 * MS]);
});

test('fixed rate: record n due n / rate s after the first, in whole ns', (t) => {
  const tl = fixedRateTimelineNs(100_001, 10_000);
  t.is(tl[0], 0);
  t.is(tl[1], 100_000);
  t.is(tl[100_000], 10e9);
  t.deepEqual(Array.from(fixedRateTimelineNs(4, 3)), [0, 333_333_333, 666_666_667, 1e9]);
});

test('linearFit: slope and intercept, large x, NaNs skipped, degenerate input', (t) => {
  // Lateness growing 2 ppm over 10 s of ideal time, from 5 µs.
  const x = Array.from({ length: 1001 }, (_, i) => i * 1e7);
  const y = x.map((v) => 5000 + 2e-6 * v);
  const fit = linearFit(x, y);
  t.true(Math.abs(fit.slope * 1e6 - 2) < 1e-9, String(fit.slope));
  t.true(Math.abs(fit.intercept - 5000) < 1e-6, String(fit.intercept));
  t.is(fit.n, 1001);
  // Large absolute x (a CLOCK_MONOTONIC time) keep the slope.
  const far = linearFit(x.map((v) => v + 4e12), y);
  t.true(Math.abs(far.slope * 1e6 - 2) < 1e-6, String(far.slope));
  const holes = linearFit([0, 1, 2, NaN, 3], [1, 3, NaN, 100, 7]);
  t.deepEqual(holes, { slope: 2, intercept: 1, n: 3 });
  t.true(Number.isNaN(linearFit([1, 1], [2, 3]).slope));
  t.true(Number.isNaN(linearFit([1], [2]).slope));
  t.throws(() => linearFit([1, 2], [1]), { instanceOf: RangeError });
});
