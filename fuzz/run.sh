#!/usr/bin/env bash
# Fuzz netreplay-core with libFuzzer, one target at a time.
#
#   fuzz/run.sh short            every target for 20 s (7 targets: the 150 s CI had for 5)
#   fuzz/run.sh long [SECONDS]   every target for SECONDS (default 600)
#
# Environment:
#   FUZZ_TARGETS="a b"   run only these targets (default: all of them)
#   FUZZ_RUNS=N          also stop each target after N executions
#
# The crate is a standard cargo-fuzz project (`cargo fuzz run <target>`
# works too), but this script builds it with plain `cargo +nightly build`
# and the RUSTFLAGS cargo-fuzz 0.13 uses (sanitizer coverage, AddressSanitizer,
# debug assertions), so CI needs no `cargo install cargo-fuzz`.
#
# Prints, per target, executions, crashes and exec/s (libFuzzer's final
# stats), then `fuzz: N targets, M executions, K crashes`. Exits non-zero on
# any crash (or build failure). Without a nightly toolchain: skipped, exit 0.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
mode=${1:-short}
case "$mode" in
short) seconds=20 ;;
long) seconds=${2:-600} ;;
*)
  echo "usage: $0 short | long [SECONDS]" >&2
  exit 2
  ;;
esac
case "$seconds" in
'' | *[!0-9]*)
  echo "fuzz: SECONDS must be a whole number, got '$seconds'" >&2
  exit 2
  ;;
esac
all_targets="mcl_reader wire_decode wire_roundtrip reassembly_ops deadline mcap_reader pcap_reader"
targets=${FUZZ_TARGETS:-$all_targets}
runs=${FUZZ_RUNS:-}

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: skipped (no nightly toolchain)"
  exit 0
fi
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')

# ------------------------------------------------------------------ build
flags="-Cpasses=sancov-module"
flags+=" -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters"
flags+=" -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares"
flags+=" --cfg fuzzing"
flags+=" -Cllvm-args=-simplifycfg-branch-fold-threshold=0"
flags+=" -Zsanitizer=address"
flags+=" -Cllvm-args=-sanitizer-coverage-stack-depth"
flags+=" -Cdebug-assertions" # and so overflow checks: fuzzing finds overflows
flags+=" -Ccodegen-units=1"
mkdir -p "$here/artifacts"
build_log="$here/artifacts/build.log"
build_start=$(date +%s)
# --target: RUSTFLAGS then apply to the targets only, not to build scripts.
if ! RUSTFLAGS="$flags ${RUSTFLAGS:-}" nice -n 10 cargo +nightly build \
  --manifest-path "$here/Cargo.toml" --target-dir "$here/target" \
  --release --config 'profile.release.debug="line-tables-only"' \
  --target "$triple" --bins >"$build_log" 2>&1; then
  tail -n 40 "$build_log"
  echo "fuzz: build failed (log: $build_log)"
  exit 1
fi
echo "fuzz: built in $(($(date +%s) - build_start)) s ($triple)"
bin_dir="$here/target/$triple/release"

# ------------------------------------------------------------- seed corpora
# Made at run time, never committed: the MCL fixture logs and a few
# hand-made datagrams.
unhex() { printf '%b' "$(printf '%s' "$1" | sed 's/../\\x&/g')"; }

fixture_logs() {
  local dir
  for dir in "$root/fixtures/mcl/dataset" "$root/../shared/fixtures/mcl/dataset"; do
    [ -d "$dir" ] && ls "$dir"/*.log 2>/dev/null
  done
}

# The payload hex of the first record of each fixture log.
fixture_payloads() {
  local log
  fixture_logs | while read -r log; do
    awk '!/^#/ && NF >= 3 { print $3; exit }' "$log"
  done | sort -u
}

datagram_seeds() { # dir
  local k=0 hex
  for hex in \
    92a363616d81a16101 \
    92c081a464617461cb3fe0000000000000 \
    94a1740102da0003010203 \
    94c00202a0 \
    dc0002a17401 \
    dd00000004c0cd0100cd0200c403616263 \
    94a5746f7069630103c40a00010203040506070809 \
    92c0c1 \
    $(fixture_payloads | sed 's/^/92c0/') \
    $(fixture_payloads); do
    unhex "$hex" >"$1/datagram-$k"
    k=$((k + 1))
  done
}

seed() { # target dir
  local t=$1 dir=$2 log k=0
  case "$t" in
  mcl_reader)
    fixture_logs | while read -r log; do
      k=$((k + 1))
      cp "$log" "$dir/log-$k-$(basename "$log")"
      # The header alone, records alone, CRLF line ends.
      grep '^#' "$log" >"$dir/header-$k"
      grep -v '^#' "$log" | head -n 5 >"$dir/records-$k"
      sed 's/$/\r/' "$log" | head -n 30 >"$dir/crlf-$k"
    done
    printf "%s\n" "0.5 'a\\'b' 80" "1 u'\\xe9\\u00e9' c0" "2 \"it's\" 0102" \
      "3 '' zz" "4 'x' 0" "-1e-3 'y' 90" "1.0000000015 '' 80" >"$dir/odd-lines"
    ;;
  wire_decode)
    datagram_seeds "$dir"
    ;;
  mcap_reader | pcap_reader)
    # The target writes its own seeds (files built with the core's writer,
    # captures built byte by byte, in the target's input format) when run
    # once with NETREPLAY_FUZZ_SEEDS set.
    : >"$scratch/empty-input"
    NETREPLAY_FUZZ_SEEDS="$dir" TMPDIR="$scratch" \
      ASAN_OPTIONS="detect_odr_violation=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
      "$bin_dir/$t" "$scratch/empty-input" >"$here/artifacts/$t/seed.log" 2>&1 ||
      echo "fuzz: $t: writing seeds failed (log: $here/artifacts/$t/seed.log)"
    ;;
  *)
    # Structured targets read their input through `arbitrary`: any bytes do.
    datagram_seeds "$dir"
    head -c 64 /dev/zero >"$dir/zeros"
    printf '\377%.0s' $(seq 64) >"$dir/ones"
    ;;
  esac
}

dict_for() {
  case "$1" in
  mcl_reader) echo "$here/dicts/mcl.dict" ;;
  wire_decode) echo "$here/dicts/msgpack.dict" ;;
  mcap_reader) echo "$here/dicts/mcap.dict" ;;
  pcap_reader) echo "$here/dicts/pcap.dict" ;;
  esac
}

# ------------------------------------------------------------------ fuzzing
# The MCL reader writes its scratch files under TMPDIR: memory, not disk,
# when /dev/shm exists (several times faster).
scratch=$(mktemp -d /dev/shm/netreplay-fuzz.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$scratch"' EXIT

total_execs=0
total_crashes=0
count=0
for t in $targets; do
  bin="$bin_dir/$t"
  if [ ! -x "$bin" ]; then
    echo "fuzz: $t: no such target"
    total_crashes=$((total_crashes + 1))
    continue
  fi
  count=$((count + 1))
  corpus="$here/corpus/$t"
  artifacts="$here/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  [ -n "$(ls -A "$corpus")" ] || seed "$t" "$corpus"
  # Known crashers and past finds: run first, every time.
  for hex in "$here/regressions/$t"/*.hex; do
    [ -f "$hex" ] || continue
    unhex "$(grep -v '^#' "$hex" | tr -d ' \n')" >"$corpus/regression-$(basename "$hex" .hex)"
  done
  args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10
    -rss_limit_mb=2048 -artifact_prefix="$artifacts/")
  dict=$(dict_for "$t")
  [ -n "$dict" ] && args+=(-dict="$dict")
  [ -n "$runs" ] && args+=(-runs="$runs")
  log="$artifacts/last-run.log"
  start=$(date +%s)
  # Guard against a libFuzzer that does not stop by itself.
  TMPDIR="$scratch" ASAN_OPTIONS="detect_odr_violation=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    timeout -k 10 $((seconds + 300)) nice -n 10 "$bin" "${args[@]}" "$corpus" >"$log" 2>&1
  rc=$?
  elapsed=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  [ -n "$execs" ] || execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
  execs=${execs:-0}
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  crashes=0
  [ "$rc" -ne 0 ] && crashes=1
  total_execs=$((total_execs + execs))
  total_crashes=$((total_crashes + crashes))
  echo "fuzz: $t: $execs executions, $crashes crashes, ${rate:-?} exec/s, ${elapsed} s"
  if [ "$crashes" -ne 0 ]; then
    echo "fuzz: $t: libFuzzer exited with $rc (log: $log)"
    grep -E -A 2 "panicked at|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)" "$log" | head -n 12 | sed 's/^/    /'
    sed -n 's/.*Test unit written to \(.*\)/    artifact: \1/p' "$log"
  fi
done

echo "fuzz: $count targets, $total_execs executions, $total_crashes crashes"
[ "$total_crashes" -eq 0 ]
