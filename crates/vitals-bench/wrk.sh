#!/usr/bin/env bash
# HTTP server overhead of the instrumentation, measured with wrk.
#
# Builds src/bin/bench_server.rs in release, then for ROUNDS rounds runs each
# mode (plain, vitals, axum-prometheus; the order rotates every round) with
# the server pinned to one CPU (1 tokio worker) and wrk pinned to another, on
# loopback. Before each run it waits for the machine to be quiet; a run during
# which other processes used more than BUSY_PCT % of a CPU is discarded (and
# logged). Prints per mode: median req/s, ratio to plain, median p50/p99
# latency, extra server CPU per request derived from req/s (the server core is
# saturated) and server CPU per request as measured from /proc/PID/stat.
#
#   crates/vitals-bench/wrk.sh                 # 5 rounds x 3 modes x 10 s
#   ROUNDS=3 DURATION=5 crates/vitals-bench/wrk.sh
#
# Environment: ROUNDS (5), DURATION (seconds, 10), WARMUP (seconds, 2),
# CONNECTIONS (32), SERVER_CPU (0), WRK_CPU (1), BUSY_PCT (15),
# QUIET_TRIES (6), QUIET_WAIT (seconds between tries, 5), MODES (the three;
# bench_server also has noop-layer: plain plus an identity Router::layer,
# and vitals-push: vitals with the push client pushing every second),
# OUT (results directory, a fresh temporary one by default).
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-32}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
BUSY_PCT=${BUSY_PCT:-15}
QUIET_TRIES=${QUIET_TRIES:-6}
QUIET_WAIT=${QUIET_WAIT:-5}
read -r -a MODES <<<"${MODES:-plain vitals axum-prometheus}"
OUT=${OUT:-$(mktemp -d /tmp/vitals-wrk.XXXXXX)}
mkdir -p "$OUT"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

WRK=$(command -v wrk || true)
[[ -n $WRK ]] || die "wrk not found: apt-get install -y wrk"
command -v taskset >/dev/null || die "taskset not found (util-linux)"
command -v curl >/dev/null || die "curl not found"
ncpu=$(nproc --all)
((SERVER_CPU < ncpu && WRK_CPU < ncpu)) || die "need CPUs $SERVER_CPU and $WRK_CPU; this machine has $ncpu"
[[ $SERVER_CPU != "$WRK_CPU" ]] || die "SERVER_CPU and WRK_CPU must differ"

cd "$(dirname "$0")/../.."
log "building bench_server (release)"
cargo build --release --quiet -p vitals-bench --bin bench_server
target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
SERVER=$target_dir/release/bench_server
[[ -x $SERVER ]] || die "no binary at $SERVER"

TICK=$(getconf CLK_TCK)
TIMEFORMAT='%U %S'

# Busy jiffies of the whole machine: user nice system irq softirq steal.
busy_jiffies() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# utime + stime of a process and its threads, in jiffies.
proc_jiffies() {
    # Field 2 (comm) may hold spaces: cut everything up to the last ')'.
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    stat=${stat##*) }
    awk '{ print $12 + $13 }' <<<"$stat"
}

now_ns() { date +%s%N; }

# Percent of one CPU the machine used over about one second.
sample_busy_pct() {
    local b0 b1 t0 t1
    b0=$(busy_jiffies); t0=$(now_ns)
    sleep 1
    b1=$(busy_jiffies); t1=$(now_ns)
    awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" -v hz="$TICK" \
        'BEGIN { printf "%.1f", 100 * b / hz / (t / 1e9) }'
}

# Waits until the machine is quiet; returns 1 if it never was.
wait_quiet() {
    local try pct
    for ((try = 1; try <= QUIET_TRIES; try++)); do
        pct=$(sample_busy_pct)
        if awk -v p="$pct" -v lim="$BUSY_PCT" 'BEGIN { exit !(p <= lim) }'; then
            return 0
        fi
        log "  machine busy before the run ($pct % of a CPU; load $(cut -d' ' -f1-3 /proc/loadavg)), waiting ${QUIET_WAIT}s (try $try/$QUIET_TRIES)"
        sleep "$QUIET_WAIT"
    done
    return 1
}

# "1.23ms" -> microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") m = 1; else if (u == "ms") m = 1e3;
        else if (u == "s") m = 1e6; else if (u == "m") m = 6e7; else m = -1
        if (m < 0) { print "nan"; exit }
        printf "%.1f", n * m }'
}

SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

# Starts the server in mode $1; sets SERVER_PID and URL.
start_server() {
    local mode=$1 addr= i
    : >"$OUT/server.out"
    taskset -c "$SERVER_CPU" "$SERVER" --mode "$mode" --listen 127.0.0.1:0 --workers 1 \
        >"$OUT/server.out" 2>>"$OUT/server.err" &
    SERVER_PID=$!
    for ((i = 0; i < 100; i++)); do
        addr=$(sed -n 's/^listening on //p' "$OUT/server.out")
        [[ -n $addr ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null || die "server ($mode) exited; see $OUT/server.err"
        sleep 0.05
    done
    [[ -n $addr ]] || die "server ($mode) did not start within 5 s"
    URL=$addr
    curl -fsS --max-time 5 "$URL/users/42" >/dev/null || die "GET /users/42 failed ($mode)"
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

run_wrk() { # duration, output file
    timeout $(($1 + 30)) taskset -c "$WRK_CPU" "$WRK" -t1 -c"$CONNECTIONS" -d"$1s" --latency \
        "$URL/users/42" >"$2" 2>"$2.err"
}

RESULTS=$OUT/results.tsv
printf 'round\tmode\tstatus\trps\tp50_us\tp99_us\tserver_cpu_pct\tserver_us_per_req\tothers_pct\n' >"$RESULTS"
log "results in $OUT; $ROUNDS rounds x ${#MODES[@]} modes x ${DURATION}s; server on CPU $SERVER_CPU, wrk on CPU $WRK_CPU, $CONNECTIONS connections"

for ((round = 1; round <= ROUNDS; round++)); do
    n=${#MODES[@]}
    for ((k = 0; k < n; k++)); do
        mode=${MODES[$(((k + round - 1) % n))]}
        status=ok
        if ! wait_quiet; then
            status=busy-before
        fi
        start_server "$mode"
        run_wrk "$WARMUP" "$OUT/warmup.txt" || die "wrk warm-up failed ($mode)"
        s0=$(proc_jiffies "$SERVER_PID"); b0=$(busy_jiffies); t0=$(now_ns)
        wrk_out=$OUT/wrk-r$round-$mode.txt
        # wrk's own CPU time (user + system, seconds), from bash's `time`.
        { time run_wrk "$DURATION" "$wrk_out"; } 2>"$OUT/wrk.time" || die "wrk failed ($mode); see $wrk_out"
        wrk_jiffies=$(awk -v hz="$TICK" '{ printf "%d", ($1 + $2) * hz }' "$OUT/wrk.time")
        s1=$(proc_jiffies "$SERVER_PID"); b1=$(busy_jiffies); t1=$(now_ns)
        if [[ $mode == vitals || $mode == vitals-push || $mode == axum-prometheus ]]; then
            # The instrumentation must have seen the requests.
            scraped=$({ curl -fsS --max-time 5 "$URL/metrics" || true; } |
                grep -E '^(http_server_requests_total|axum_http_requests_total)\{' |
                grep -F '/users/{id}' | head -1 || true)
            log "  $mode /metrics: ${scraped:-NOTHING RECORDED}"
            [[ -n $scraped ]] || status=no-metrics
        fi
        stop_server

        rps=$(awk '/^Requests\/sec:/ { print $2 }' "$wrk_out")
        p50=$(to_us "$(awk '$1 == "50%" { print $2 }' "$wrk_out")")
        p99=$(to_us "$(awk '$1 == "99%" { print $2 }' "$wrk_out")")
        requests=$(awk '/requests in/ { print $1 }' "$wrk_out")
        grep -qE 'Non-2xx|Socket errors' "$wrk_out" && status=errors
        [[ -n $rps && -n $requests ]] || die "could not parse $wrk_out"
        read -r server_pct server_us others_pct < <(awk \
            -v s="$((s1 - s0))" -v b="$((b1 - b0))" -v w="$wrk_jiffies" -v t="$((t1 - t0))" \
            -v hz="$TICK" -v req="$requests" 'BEGIN {
                secs = t / 1e9
                # Others: machine busy time minus the server and wrk. wrk
                # runs (nearly) the whole window; its total is an upper bound.
                others = (b - s - w) / hz / secs * 100
                if (others < 0) others = 0
                printf "%.1f %.2f %.1f\n", 100 * s / hz / secs, 1e6 * s / hz / req, others }')
        if [[ $status == ok ]] && awk -v p="$others_pct" -v lim="$BUSY_PCT" 'BEGIN { exit !(p > lim) }'; then
            status=busy-during
        fi
        log "round $round $mode: $rps req/s, p50 ${p50}us, p99 ${p99}us, server CPU ${server_pct}% (${server_us} us/req), others ${others_pct}% -> $status"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$mode" "$status" "$rps" "$p50" "$p99" \
            "$server_pct" "$server_us" "$others_pct" >>"$RESULTS"
    done
done

discarded=$(awk -F'\t' 'NR > 1 && $3 != "ok"' "$RESULTS")
if [[ -n $discarded ]]; then
    log "discarded runs (round mode status ...):"
    printf '%s\n' "$discarded" >&2
else
    log "no run discarded"
fi

# Median of the kept runs per mode, then the table.
summary() {
    local mode=$1 col=$2
    awk -F'\t' -v m="$mode" -v c="$col" 'NR > 1 && $2 == m && $3 == "ok" { print $c }' "$RESULTS" |
        sort -g | awk '{ v[NR] = $1 } END {
            if (NR == 0) { print "nan"; exit }
            if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# Per round, req/s of each mode over plain's in the same round: the machine's
# speed drifts between rounds, and this ratio cancels most of that drift.
paired_ratio() {
    awk -F'\t' -v m="$1" 'NR > 1 && $3 == "ok" && $2 == "plain" { p[$1] = $4 }
        NR > 1 && $3 == "ok" && $2 == m { r[$1] = $4 }
        END { for (k in r) if (k in p) print r[k] / p[k] }' "$RESULTS" |
        sort -g | awk '{ v[NR] = $1 } END {
            if (NR == 0) { print "nan nan nan"; exit }
            med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            print med, v[1], v[NR] }'
}
plain_rps=$(summary plain 4)
echo
echo "| mode | runs kept | median req/s | × plain (medians) | × plain (median of per-round ratios, min–max) | median p50 | median p99 | extra server CPU/req (from req/s) | server CPU/req (measured) | server CPU |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for mode in "${MODES[@]}"; do
    kept=$(awk -F'\t' -v m="$mode" 'NR > 1 && $2 == m && $3 == "ok"' "$RESULTS" | wc -l)
    read -r pr_med pr_min pr_max < <(paired_ratio "$mode")
    awk -v m="$mode" -v k="$kept" -v r="$(summary "$mode" 4)" -v p="$plain_rps" \
        -v prm="$pr_med" -v prl="$pr_min" -v prh="$pr_max" \
        -v p50="$(summary "$mode" 5)" -v p99="$(summary "$mode" 6)" \
        -v cpu="$(summary "$mode" 7)" -v us="$(summary "$mode" 8)" 'BEGIN {
        if (k == 0) { printf "| %s | 0 | — | — | — | — | — | — | — | — |\n", m; exit }
        have_plain = (p != "nan" && p + 0 > 0)
        extra = (m == "plain" || !have_plain) ? "—" : sprintf("%+.2f µs", 1e6 / r - 1e6 / p)
        ratio = have_plain ? sprintf("%.3f", r / p) : "—"
        paired = (m == "plain") ? "1.000" : (prm == "nan" ? "—" : sprintf("%.3f (%.3f–%.3f)", prm, prl, prh))
        printf "| %s | %d | %.0f | %s | %s | %.0f µs | %.0f µs | %s | %.2f µs | %.0f %% |\n",
            m, k, r, ratio, paired, p50, p99, extra, us, cpu }'
done
echo
echo "raw results: $RESULTS"
