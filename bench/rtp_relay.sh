#!/usr/bin/env bash
# RTP relay cost per packet and packet loss, centralino beside rtpengine (userspace only,
# --table=-1), at 200 and 1,000 concurrent calls, each leg of each call sending 50 packets/s
# (20 ms PCMU, 172-byte RTP) for SECONDS. Calls through centralino are set up with SIP
# (bench/sipcalls.py: register 201, trunk calls from 127.0.0.2); rtpengine sessions with its ng
# protocol (bench/ngclient.py offer/answer). bench/rtpload sends and counts the media. Cost =
# the relay process's utime+stime during the media phase / packets relayed. Loopback only;
# bounded in calls and time; everything started here is stopped on exit.
#
# Environment: CALLS="200 1000", SECONDS_MEDIA (default 20), PPS (per leg, default 50),
# ONLY="centralino rtpengine".
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CALLS="${CALLS:-200 1000}"
SECONDS_MEDIA="${SECONDS_MEDIA:-20}"
PPS="${PPS:-50}"
ONLY="${ONLY:-centralino rtpengine}"

B=$BENCH_PORT_BASE
SW_PORT=$((B + 260)) METRICS_PORT=$((B + 261)) NG_PORT=$((B + 222)) MEDIA_BASE=10000
SIP_UAS_PORT=$((B + 270)) SIP_UAC_PORT=$((B + 280))
ports_free "$SW_PORT" "$METRICS_PORT" "$NG_PORT" "$SIP_UAS_PORT" "$SIP_UAC_PORT"

need sipp sip-tester rtpengine rtpengine-daemon
build_switch
RTPLOAD="$BENCH_DIR/rtpload/target/release/rtpload"
log "building bench/rtpload"
(cd "$BENCH_DIR/rtpload" && cargo build --release -q)
bench_init rtp_relay

# media_run NAME CALLS RELAY_PID CONTROLLER...: sets up calls with the controller (which
# writes the legs file and holds the calls until a line on its stdin), runs rtpload, tears down.
# Sets R_UP R_SENT R_RECV R_LOSS R_US (relay CPU µs per relayed packet) R_CPU (% of one core).
media_run() {
    local name="$1" calls="$2" relay="$3"
    shift 3
    local legs="$WORK/legs-$name-$calls" ctl="$WORK/ctl-$name-$calls" out="$WORK/ctl-$name-$calls.out"
    rm -f "$legs" "$ctl"
    mkfifo "$ctl"
    "$@" --calls "$calls" --media-base "$MEDIA_BASE" --legs "$legs" <"$ctl" >"$out" 2>&1 &
    local cpid=$!
    BENCH_PIDS+=("$cpid")
    exec 3>"$ctl"
    local i
    for i in $(seq 1 600); do
        grep -q calls_up "$out" 2>/dev/null && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    log "$name: $(head -1 "$out")"
    R_UP="$(sed -n 's/.*calls_up=\([0-9]*\).*/\1/p' "$out" | head -1)"
    R_UP="${R_UP:-0}"
    if [[ ! -s "$legs" ]]; then
        echo "$name: no calls were set up:" >&2
        cat "$out" >&2
        exit 1
    fi
    sleep 1
    wait_quiet
    local t0 t1 w0 w1 d0
    d0="$(udp_drops)"
    t0="$(cpu_ticks "$relay")"
    w0="$(date +%s.%N)"
    "$RTPLOAD" "$legs" "$SECONDS_MEDIA" "$PPS" >"$WORK/load-$name-$calls.out"
    w1="$(date +%s.%N)"
    t1="$(cpu_ticks "$relay")"
    # Where datagrams were dropped: rtpload reports its own sockets' drop counters; the relay's
    # sockets for these legs are read from /proc/net/udp (drops column) before the teardown.
    R_GDROPS="$(sed -n 's/.* rtpload_socket_drops=\([0-9]*\).*/\1/p' "$WORK/load-$name-$calls.out")"
    R_RDROPS="$(python3 -c '
import sys
rel = {int(l.split()[1]) for l in open(sys.argv[1]) if l.strip()}
total = 0
for l in list(open("/proc/net/udp"))[1:]:
    f = l.split()
    if int(f[1].rsplit(":", 1)[1], 16) in rel:
        total += int(f[-1])
print(total)' "$legs")"
    # seconds= above 20 means the generator fell behind (starved of CPU) and sent in bursts.
    log "$name: rtpload: $(cat "$WORK/load-$name-$calls.out"); UDP rcvbuf drops (system) $(($(udp_drops) - d0)); dropped at rtpload's sockets $R_GDROPS, at the relay's $R_RDROPS"
    R_SENT="$(sed -n 's/.* sent=\([0-9]*\).*/\1/p' "$WORK/load-$name-$calls.out")"
    R_RECV="$(sed -n 's/.* received=\([0-9]*\).*/\1/p' "$WORK/load-$name-$calls.out")"
    R_GENS="$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' "$WORK/load-$name-$calls.out")"
    R_LOSS="$(sed -n 's/.* loss_pct=\([0-9.]*\).*/\1/p' "$WORK/load-$name-$calls.out")"
    R_US="$(awk -v t="$((t1 - t0))" -v hz="$HZ" -v n="$R_RECV" 'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / hz / n; else print "n/a" }')"
    R_CPU="$(awk -v t="$((t1 - t0))" -v hz="$HZ" -v a="$w0" -v b="$w1" 'BEGIN { printf "%.0f", 100 * t / hz / (b - a) }')"
    echo >&3
    exec 3>&-
    for i in $(seq 1 150); do
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    log "$name: $(tail -1 "$out")"
}

declare -A UP SENT RECV LOSS US CPU GENS GDROP RDROP

if [[ " $ONLY " == *" centralino "* ]]; then
    for n in $CALLS; do
        log "centralino, $n calls"
        switch_config "$WORK/centralino-$n.toml" "20000-29999" "127.0.0.1:$METRICS_PORT"
        start_switch "$WORK/centralino-$n.toml" "127.0.0.1:$SW_PORT" "$WORK/data-$n" "$WORK/switch-$n.log"
        media_run centralino "$n" "$SWITCH_PID" python3 "$BENCH_DIR/sipcalls.py" --switch "127.0.0.1:$SW_PORT" --uas-port "$SIP_UAS_PORT" --uac-port "$SIP_UAC_PORT"
        k="centralino/$n"
        UP[$k]=$R_UP SENT[$k]=$R_SENT RECV[$k]=$R_RECV LOSS[$k]=$R_LOSS US[$k]=$R_US CPU[$k]=$R_CPU GENS[$k]=$R_GENS GDROP[$k]=$R_GDROPS RDROP[$k]=$R_RDROPS
        for i in $(seq 1 20); do
            [[ "$(metric "127.0.0.1:$METRICS_PORT" centralino_calls_active)" == 0 ]] && break
            sleep 0.5
        done
        log "switch after hang-up: calls_active=$(metric "127.0.0.1:$METRICS_PORT" centralino_calls_active)" \
            "media_ports_in_use=$(metric "127.0.0.1:$METRICS_PORT" centralino_media_ports_in_use)"
        if grep -qE "WARN|ERROR" "$WORK/switch-$n.log"; then
            log "switch log warnings (first 10 of $(grep -cE "WARN|ERROR" "$WORK/switch-$n.log")):"
            grep -E "WARN|ERROR" "$WORK/switch-$n.log" | head -10 >&2
        fi
        kill -TERM "$SWITCH_PID" 2>/dev/null || true
        wait "$SWITCH_PID" 2>/dev/null || true
    done
fi

if [[ " $ONLY " == *" rtpengine "* ]]; then
    for n in $CALLS; do
        log "rtpengine (userspace, --table=-1), $n calls"
        rtpengine --config-file=none --foreground --log-stderr --log-level=4 --table=-1 \
            --interface=127.0.0.1 --listen-ng="127.0.0.1:$NG_PORT" --port-min=30000 --port-max=39999 \
            --num-threads=2 --timeout=120 --delete-delay=0 >"$WORK/rtpengine-$n.log" 2>&1 &
        RE_PID=$!
        BENCH_PIDS+=("$RE_PID")
        sleep 1
        kill -0 "$RE_PID" 2>/dev/null || { cat "$WORK/rtpengine-$n.log" >&2; exit 1; }
        media_run rtpengine "$n" "$RE_PID" python3 "$BENCH_DIR/ngclient.py" --ng "127.0.0.1:$NG_PORT"
        k="rtpengine/$n"
        UP[$k]=$R_UP SENT[$k]=$R_SENT RECV[$k]=$R_RECV LOSS[$k]=$R_LOSS US[$k]=$R_US CPU[$k]=$R_CPU GENS[$k]=$R_GENS GDROP[$k]=$R_GDROPS RDROP[$k]=$R_RDROPS
        kill -TERM "$RE_PID" 2>/dev/null || true
        wait "$RE_PID" 2>/dev/null || true
    done
fi

echo
echo "RTP relay, $PPS packets/s per leg, $SECONDS_MEDIA s, $(nproc) CPUs, $(date -u +%FT%TZ)"
printf "%-22s %8s %10s %10s %8s %12s %8s %8s %12s %12s\n" relay calls-up sent relayed loss-% "µs/packet" "CPU %" "send-s" "drops@load" "drops@relay"
for n in $CALLS; do
    for r in centralino rtpengine; do
        k="$r/$n"
        if [[ -n "${US[$k]:-}" ]]; then
            printf "%-22s %8s %10s %10s %8s %12s %8s %8s %12s %12s\n" "$r, $n calls" "${UP[$k]}" "${SENT[$k]}" "${RECV[$k]}" "${LOSS[$k]}" "${US[$k]}" "${CPU[$k]}" "${GENS[$k]}" "${GDROP[$k]}" "${RDROP[$k]}"
        fi
    done
    if [[ -n "${US[centralino/$n]:-}" && -n "${US[rtpengine/$n]:-}" ]]; then
        r="$(ratio "${US[centralino/$n]}" "${US[rtpengine/$n]}")"
        verdict="met"
        if awk -v r="$r" 'BEGIN { exit !(r > 1.0) }'; then verdict="MISSED"; fi
        echo "  $n calls: ratio centralino/rtpengine CPU per packet = $r (floor: <= 1.00: $verdict)"
    fi
done
echo "send-s: how long rtpload took to send ${SECONDS_MEDIA} s of media; longer means the generator was short of CPU and sent in bursts;
drops@load / drops@relay: datagrams the kernel dropped on full receive buffers of rtpload's / the relay's sockets"
