#!/usr/bin/env bash
# IVR playout under load (issue 5): CALLS concurrent trunk calls (from 127.0.0.2, no auth) to
# the IVR number 800840840, the switch pinned to ONE core (taskset -c 0), the load generator
# (crates/harness/examples/ivr_load.rs) on the other (taskset -c 1). Each call receives the
# welcome+menu prompts as 20 ms PCMU RTP; the generator records every packet's arrival,
# presses 1 (RFC 4733) on every call after a steady window and checks that the switch barges
# in (a new playback, marker bit) within 1 s; then BYE. Reported: jitter |inter-arrival − 20
# ms| (p50/p99/p99.9/max over all calls), loss, digits detected/sent, the switch's CPU.
# Loopback only; bounded in calls and time; everything started here is stopped on exit.
#
# Environment: CALLS (default 1000), RAMP (calls/s, default 200), HOLD (s, default 20),
# RTP_PORTS (switch media range, default 20000-29999: the generator's sockets are OS-chosen
# ephemeral ports, 32768-60999), CARGO_TARGET_DIR.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$REPO_DIR/target}"
CENTRALINO="${CENTRALINO:-$TARGET/release/centralino}"
source "$(dirname "$0")/lib.sh"

CALLS="${CALLS:-1000}"
RAMP="${RAMP:-200}"
HOLD="${HOLD:-20}"
RTP_PORTS="${RTP_PORTS:-20000-29999}"
B=$BENCH_PORT_BASE
SW_PORT=$((B + 460)) METRICS_PORT=$((B + 461))
ports_free "$SW_PORT" "$METRICS_PORT"

if [[ -z "${NO_BUILD:-}" ]]; then
    # Two commands: with --example, cargo builds no binaries of the other package.
    log "cargo build --release -p switch; cargo build --release -p harness --example ivr_load"
    (cd "$REPO" && cargo build --release -q -p switch && cargo build --release -q -p harness --example ivr_load)
fi
LOADGEN="$TARGET/release/examples/ivr_load"
[[ -x "$CENTRALINO" && -x "$LOADGEN" ]] || { echo "missing $CENTRALINO or $LOADGEN" >&2; exit 1; }

# 4 sockets per call on the switch (two port pairs), 1 per call in the generator.
ulimit -n "$((CALLS * 6 + 1024))"
bench_init ivr_playout

switch_config "$WORK/switch.toml" "$RTP_PORTS" "127.0.0.1:$METRICS_PORT" prompts "\"$REPO/prompts/it\""
mkdir -p "$WORK/data"
RUST_LOG="${RUST_LOG:-warn}" taskset -c 0 "$CENTRALINO" run --config "$WORK/switch.toml" \
    --listen "127.0.0.1:$SW_PORT" --data-dir "$WORK/data" --start-time 2026-03-02T09:00:00Z \
    2>"$WORK/switch.log" &
SWITCH_PID=$!
BENCH_PIDS+=("$SWITCH_PID")
for i in $(seq 1 100); do
    python3 "$BENCH_DIR/sipping.py" "127.0.0.1:$SW_PORT" 2>/dev/null && break
    kill -0 "$SWITCH_PID" 2>/dev/null || { cat "$WORK/switch.log" >&2; exit 1; }
    sleep 0.1
done
wait_quiet
log "switch pid $SWITCH_PID on cpu 0; $CALLS calls at $RAMP/s, hold ${HOLD}s; generator on cpu 1"
taskset -c 1 "$LOADGEN" --switch "127.0.0.1:$SW_PORT" --calls "$CALLS" --ramp-per-sec "$RAMP" \
    --hold-secs "$HOLD" --switch-pid "$SWITCH_PID" | tee "$WORK/ivr_load.out"
# Same-run reference: plain tokio interval senders (a thread of the generator) → the same
# receiver and statistics; the sender thread is not pinned (taskset -c 0,1 for the process).
if [[ -z "${NO_REFERENCE:-}" ]]; then
    log "reference: $CALLS tokio interval(20 ms) streams, 10 s"
    taskset -c 0,1 "$LOADGEN" --reference "$CALLS" --hold-secs 10 | tee -a "$WORK/ivr_load.out"
fi
log "UDP receive-buffer errors since boot: $(awk '/^Udp:/ { if (h) print $6; h = 1 }' /proc/net/snmp)"
if [[ -s "$WORK/switch.log" ]]; then
    log "switch log (last lines):"
    tail -5 "$WORK/switch.log" >&2
fi
