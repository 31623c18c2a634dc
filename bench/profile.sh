#!/usr/bin/env bash
# Profiles centralino with perf under a fixed SIPp load: `profile.sh calls` (trunk calls to a
# registered SIPp UAS, no media, like call_setup.sh) or `profile.sh register` (digest
# REGISTERs, like register.sh). Prints the top functions (self time, then with children).
# Loopback only; bounded by -m and -timeout; everything started here is stopped on exit.
#
# Environment: RATE (default 1000), CALLS (default 10000), TOP (lines, default 30).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

MODE="${1:-calls}"
RATE="${RATE:-1000}"
CALLS="${CALLS:-10000}"
TOP="${TOP:-30}"
B=$BENCH_PORT_BASE
SW_PORT=$((B + 360)) METRICS_PORT=$((B + 361)) UAS_PORT=$((B + 370)) UAC_PORT=$((B + 380)) REG_PORT=$((B + 381))
ports_free "$SW_PORT" "$METRICS_PORT" "$UAS_PORT" "$UAC_PORT" "$REG_PORT"

need sipp sip-tester perf linux-perf
build_switch
bench_init profile

switch_config "$WORK/centralino.toml" "20000-29999" "127.0.0.1:$METRICS_PORT"
start_switch "$WORK/centralino.toml" "127.0.0.1:$SW_PORT" "$WORK/data" "$WORK/switch.log"

if [[ "$MODE" == calls ]]; then
    sipp -sf "$REPO/tests/sipp/register.xml" -s 201 -au 201 -ap pw201 -key contact_port "$UAS_PORT" \
        -key expires 3600 -m 1 -p "$REG_PORT" -i 127.0.0.1 -timeout 10 -nostdin "127.0.0.1:$SW_PORT" >/dev/null
    sipp -sn uas -i 127.0.0.1 -p "$UAS_PORT" -mp 16300 -m "$CALLS" -timeout 120 -nostdin -buff_size 4194304 >"$WORK/uas.out" 2>&1 &
    BENCH_PIDS+=($!)
    sleep 0.3
    load=(sipp -sn uac -d 0 -s 201 -i 127.0.0.2 -p "$UAC_PORT" -mp 16200 -r "$RATE" -rp 1000 -m "$CALLS"
        -l 30000 -timeout 120 -recv_timeout 10000 -buff_size 4194304 -nostdin "127.0.0.1:$SW_PORT")
else
    { echo SEQUENTIAL; for u in 201 202 203 204 205; do echo "$u;[authentication username=$u password=pw$u]"; done; } >"$WORK/users.csv"
    load=(sipp -sf "$BENCH_DIR/register_inf.xml" -inf "$WORK/users.csv" -key contact_port "$UAS_PORT"
        -i 127.0.0.1 -p "$UAC_PORT" -r "$RATE" -rp 1000 -m "$CALLS" -l 30000 -timeout 120
        -recv_timeout 10000 -buff_size 4194304 -nostdin "127.0.0.1:$SW_PORT")
fi

perf record -F 999 -g --call-graph dwarf,16384 -o "$WORK/perf.data" -p "$SWITCH_PID" >/dev/null 2>"$WORK/perf.err" &
PERF_PID=$!
BENCH_PIDS+=("$PERF_PID")
sleep 0.5
"${load[@]}" >"$WORK/load.out" 2>&1 || true
kill -INT "$PERF_PID" 2>/dev/null || true
wait "$PERF_PID" 2>/dev/null || true
read -r ok bad cps < <(sipp_stats "$WORK/load.out")
echo "load: $MODE at -r $RATE: $ok ok, $bad failed, achieved $cps/s"
echo "--- top $TOP by self time ---"
perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio -g none --percent-limit 0.5 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -"$TOP"
echo "--- top $TOP with children (inclusive) ---"
perf report -i "$WORK/perf.data" --children --sort symbol --stdio -g none --percent-limit 2 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -"$TOP"
