//! The deadline arithmetic of clock::Anchor on arbitrary i64 times and
//! speeds: no panic (fuzz builds check overflow), exact at speed 1,
//! monotone in the time, and saturating at the i64 bounds instead of
//! wrapping.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Unstructured};
use libfuzzer_sys::fuzz_target;
use netreplay_core::engine::{Anchor, Speed};

/// Interesting times: the bounds and their neighbours, zero, or any.
fn time(u: &mut Unstructured) -> arbitrary::Result<i64> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => i64::MAX - u.int_in_range(0..=3)?,
        1 => i64::MIN + u.int_in_range(0..=3)?,
        2 => u.int_in_range(-1000..=1000)?,
        _ => u.arbitrary()?,
    })
}

fn speed(u: &mut Unstructured) -> arbitrary::Result<f64> {
    Ok(match u.int_in_range(0..=9u8)? {
        0..=2 => 1.0,
        3 => f64::INFINITY,
        4 => [0.5, 2.0, 4.0, 0.1, 10.0][u.int_in_range(0..=4)?],
        5 => f64::MIN_POSITIVE * f64::from(u.int_in_range(1..=4u8)?),
        6 => f64::MAX / f64::from(u.int_in_range(1..=4u8)?),
        _ => f64::from_bits(u.arbitrary()?),
    })
}

/// `base + delta / speed` for the ideal, exact-as-f64 value, clamped to
/// i64, and the tolerance for rounding (a few ulps of the magnitudes).
fn ideal(base: i64, delta: i128, speed: f64, divide: bool) -> (f64, f64) {
    let q = if divide {
        delta as f64 / speed
    } else {
        delta as f64 * speed
    };
    let sum = base as f64 + q;
    let clamped = sum.clamp(i64::MIN as f64, i64::MAX as f64);
    let scale = (base as f64).abs() + q.abs().min(4.0 * i64::MAX as f64);
    (clamped, 2.0 + scale * f64::EPSILON * 8.0)
}

/// The exact i128 result, saturated to i64 as the engine does.
fn saturate(v: i128) -> i64 {
    v.clamp(i64::MIN.into(), i64::MAX.into()) as i64
}

fn check(anchor: Anchor, t1: i64, t2: i64, s: Speed) {
    let (lo, hi) = if t1 <= t2 { (t1, t2) } else { (t2, t1) };

    let d_lo = anchor.deadline(lo, s);
    let d_hi = anchor.deadline(hi, s);
    let l_lo = anchor.logical_at(lo, s);
    let l_hi = anchor.logical_at(hi, s);

    if s.is_max() {
        assert_eq!((d_lo, d_hi), (None, None), "infinite speed: no deadline");
        assert_eq!((l_lo, l_hi), (anchor.log_ns, anchor.log_ns));
        return;
    }
    let (Some(d_lo), Some(d_hi)) = (d_lo, d_hi) else {
        panic!("a finite speed gives deadlines");
    };
    assert!(
        d_lo <= d_hi,
        "deadline not monotone: {lo} -> {d_lo}, {hi} -> {d_hi}"
    );
    assert!(
        l_lo <= l_hi,
        "logical_at not monotone: {lo} -> {l_lo}, {hi} -> {l_hi}"
    );

    for (t, d, l) in [(lo, d_lo, l_lo), (hi, d_hi, l_hi)] {
        let delta = i128::from(t) - i128::from(anchor.log_ns);
        let since = i128::from(t) - i128::from(anchor.wall_ns);
        if s.get() == 1.0 {
            // Exact, or the bound it crosses.
            let want = i128::from(anchor.wall_ns) + delta;
            assert_eq!(d, saturate(want), "deadline({t}) at speed 1: {anchor:?}");
            let want = i128::from(anchor.log_ns) + since;
            assert_eq!(l, saturate(want), "logical_at({t}) at speed 1: {anchor:?}");
        } else {
            let (want, tol) = ideal(anchor.wall_ns, delta, s.get(), true);
            assert!(
                (d as f64 - want).abs() <= tol,
                "deadline({t}) at speed {}: {d}, want about {want} ({anchor:?})",
                s.get()
            );
            let (want, tol) = ideal(anchor.log_ns, since, s.get(), false);
            assert!(
                (l as f64 - want).abs() <= tol,
                "logical_at({t}) at speed {}: {l}, want about {want} ({anchor:?})",
                s.get()
            );
        }
    }
}

fn run(u: &mut Unstructured) -> arbitrary::Result<()> {
    let anchor = Anchor {
        wall_ns: time(u)?,
        log_ns: time(u)?,
    };
    let t1 = time(u)?;
    let t2 = time(u)?;
    let value = speed(u)?;
    match Speed::new(value) {
        Ok(s) => {
            assert!(value > 0.0, "speed {value} accepted");
            check(anchor, t1, t2, s);
        }
        Err(_) => assert!(value.is_nan() || value <= 0.0, "speed {value} refused"),
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
