#!/usr/bin/env bash
# Instructions per request of bench_server in each mode, under callgrind.
#
# Wall-clock req/s on a shared VM drifts by tens of percent between runs;
# instruction counts do not. For each mode this starts the release
# bench_server under valgrind's callgrind, sends WARMUP requests, zeroes the
# counters, sends N keep-alive requests on one connection with curl
# (`/users/[1000-...]`: ids of the same width in every mode), dumps, and
# reports user-space instructions (Ir) per request. Kernel time (the TCP
# stack, syscalls) is not counted, so the ratios here are of the user-space
# part only.
#
#   crates/vitals-bench/callgrind.sh          # N=2000
#   N=5000 MODES="plain vitals" crates/vitals-bench/callgrind.sh
#
# Modes are bench_server's: plain, noop-layer (an identity `Router::layer`:
# what any per-route axum middleware costs before it records anything),
# vitals, vitals-push (vitals with the push client on), axum-prometheus.
# The table gives each mode's extra over noop-layer too: the instrumentation's
# own cost above that floor.
#
# vitals-push pushes every PUSH_INTERVAL_MS and the vitals modes sample
# /debug/history every HISTORY_INTERVAL_MS (both 60000 by default here):
# under valgrind the requests run about 50 times slower (and slower still
# on a loaded machine), so bench_server's defaults of once a second would
# put 50 times or more of that per-interval work (encoding, sending,
# reading every histogram) of a real run into the per-request figure, and
# make it depend on the machine's load.
#
# Writes callgrind.out.MODE and annotate-MODE.txt (self cost per function,
# inlined code attributed to its source file) into OUT.
set -euo pipefail

N=${N:-2000}
export PUSH_INTERVAL_MS=${PUSH_INTERVAL_MS:-60000}
export HISTORY_INTERVAL_MS=${HISTORY_INTERVAL_MS:-60000}
WARMUP=${WARMUP:-200}
read -r -a MODES <<<"${MODES:-plain noop-layer vitals vitals-push axum-prometheus}"
OUT=${OUT:-$(mktemp -d /tmp/vitals-callgrind.XXXXXX)}
mkdir -p "$OUT"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in valgrind callgrind_control callgrind_annotate curl; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y valgrind curl)"
done

cd "$(dirname "$0")/../.."
log "building bench_server (release)"
cargo build --release --quiet -p vitals-bench --bin bench_server
target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
SERVER=$target_dir/release/bench_server
[[ -x $SERVER ]] || die "no binary at $SERVER"

VG_PID=
cleanup() {
    if [[ -n $VG_PID ]]; then
        kill "$VG_PID" 2>/dev/null || true
        wait "$VG_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

first=1000
last=$((first + N - 1))
declare -A IR
for mode in "${MODES[@]}"; do
    log "$mode: starting under callgrind"
    rm -f "$OUT/callgrind.out.$mode".*
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.$mode.%p" \
        "$SERVER" --mode "$mode" --listen 127.0.0.1:0 --workers 1 \
        >"$OUT/server-$mode.out" 2>"$OUT/server-$mode.err" &
    VG_PID=$!
    addr=
    for ((i = 0; i < 300; i++)); do
        # The background job may not have opened its output file yet.
        addr=$(sed -n 's/^listening on //p' "$OUT/server-$mode.out" 2>/dev/null || true)
        [[ -n $addr ]] && break
        kill -0 "$VG_PID" 2>/dev/null || die "server ($mode) exited; see $OUT/server-$mode.err"
        sleep 0.1
    done
    [[ -n $addr ]] || die "server ($mode) did not start within 30 s"
    curl -fsS --max-time 60 -o /dev/null "$addr/users/[1-$WARMUP]"
    callgrind_control -z "$VG_PID" >/dev/null 2>&1
    timeout 600 curl -fsS -o /dev/null "$addr/users/[$first-$last]"
    callgrind_control -d "$VG_PID" >/dev/null 2>&1
    kill "$VG_PID" 2>/dev/null || true
    wait "$VG_PID" 2>/dev/null || true
    VG_PID=
    # The dump is part 1; the final file (at exit) holds the rest.
    dump=$(ls "$OUT/callgrind.out.$mode".*.1)
    mv "$dump" "$OUT/callgrind.out.$mode"
    rm -f "$OUT/callgrind.out.$mode".*
    callgrind_annotate --inclusive=no --threshold=99.9 "$OUT/callgrind.out.$mode" \
        >"$OUT/annotate-$mode.txt" 2>/dev/null
    total=$(awk '/^summary:/ { print $2 }' "$OUT/callgrind.out.$mode")
    IR[$mode]=$total
    log "$mode: $total Ir for $N requests"
done

echo
echo "| mode | instructions / request (user space) | × plain | extra / request | over the identity layer |"
echo "|---|---:|---:|---:|---:|"
for mode in "${MODES[@]}"; do
    awk -v m="$mode" -v t="${IR[$mode]}" -v p="${IR[plain]:-${IR[$mode]}}" \
        -v f="${IR[noop-layer]:-}" -v n="$N" 'BEGIN {
        extra = (m == "plain") ? "—" : sprintf("%+.0f", (t - p) / n)
        floor = (f == "" || m == "plain" || m == "noop-layer") ? "—" : sprintf("%+.0f", (t - f) / n)
        printf "| %s | %.0f | %.3f | %s | %s |\n", m, t / n, t / p, extra, floor }'
done
echo
echo "profiles: $OUT/callgrind.out.MODE, $OUT/annotate-MODE.txt"
