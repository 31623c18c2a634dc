#!/usr/bin/env bash
# Call setups per second without media: (a) SIPp UAC -> SIPp UAS directly (the harness
# ceiling), (b) through centralino (trunk 127.0.0.2 -> extension 201), (c) through Kamailio as
# a stateful proxy. Ramps the rate; reports the highest rate with no failed call and the CPU
# time per call of the element in the middle. Loopback only; every SIPp run is bounded by -m
# and -timeout; everything started here is stopped on exit.
#
# Environment: RATES="1000 2000 ..." (calls/s to try), MAX_CALLS (per step, default 20000),
# STEP_SECONDS (calls per step = rate * this, default 4), ONLY="direct centralino kamailio".
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RATES="${RATES:-1000 2000 3000 5000 6000 8000 10000 12000 15000}"
MAX_CALLS="${MAX_CALLS:-20000}"
MIN_CALLS="${MIN_CALLS:-5000}"
STEP_SECONDS="${STEP_SECONDS:-4}"
ONLY="${ONLY:-direct centralino kamailio}"
# Wide, as a call without media still takes two port pairs. It overlaps the kernel's ephemeral
# range and the test suite's port blocks: a port held by another process fails that call
# ("cannot bind media ports" in the switch log, counted per step below).
RTP_PORTS="${RTP_PORTS:-20000-59999}"

B=$BENCH_PORT_BASE
SW_PORT=$((B + 60)) METRICS_PORT=$((B + 61)) UAS_PORT=$((B + 70)) UAC_PORT=$((B + 80)) REG_PORT=$((B + 81)) K_PORT=$((B + 90))
ports_free "$SW_PORT" "$METRICS_PORT" "$UAS_PORT" "$UAC_PORT" "$REG_PORT" "$K_PORT"

need sipp sip-tester kamailio kamailio
build_switch
bench_init call_setup

# One SIPp UAS for a step, answering CALLS calls (200 with SDP at once, 200 to the BYE).
start_uas() {
    sipp -sn uas -i 127.0.0.1 -p "$UAS_PORT" -mp 16100 -m "$1" -timeout 90 -nostdin \
        -buff_size 4194304 >"$WORK/uas-$UAS_TAG.out" 2>&1 &
    UAS_PID=$!
    BENCH_PIDS+=("$UAS_PID")
    sleep 0.3
}

stop_uas() {
    local i
    for i in $(seq 1 30); do
        kill -0 "$UAS_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -TERM "$UAS_PID" 2>/dev/null || true
    wait "$UAS_PID" 2>/dev/null || true
}

# run_step NAME RATE CALLS MIDDLE_PID UAC_IP TARGET SERVICE
# sets STEP_OK STEP_BAD STEP_CPS (achieved, SIPp's cumulative rate) STEP_TICKS (middle's CPU)
run_step() {
    local name="$1" rate="$2" calls="$3" mid="$4" ip="$5" target="$6" service="$7"
    UAS_TAG="$name-$rate"
    start_uas "$calls"
    local t0=0 t1=0 d0 b0
    d0="$(udp_drops)"
    b0="$(grep -c "cannot bind media ports" "$WORK/switch.log" 2>/dev/null || true)"
    if [[ "$mid" != - ]]; then t0="$(cpu_ticks "$mid")"; fi
    # -d 0: BYE right after the ACK. -recv_timeout: a lost message fails the call in 10 s.
    sipp -sn uac -d 0 -s "$service" -i "$ip" -p "$UAC_PORT" -mp 16000 \
        -r "$rate" -rp 1000 -m "$calls" -l 30000 -timeout 60 -recv_timeout 10000 \
        -buff_size 4194304 -nostdin "$target" >"$WORK/uac-$name-$rate.out" 2>&1 || true
    if [[ "$mid" != - ]]; then t1="$(cpu_ticks "$mid")"; fi
    STEP_BIND=$(($(grep -c "cannot bind media ports" "$WORK/switch.log" 2>/dev/null || true) - ${b0:-0}))
    STEP_DROPS="$(($(udp_drops) - d0)) (sockets since start: $(sock_drops "$SW_PORT" "$K_PORT" "$UAS_PORT" "$UAC_PORT"))"
    stop_uas
    read -r STEP_OK STEP_BAD STEP_CPS < <(sipp_stats "$WORK/uac-$name-$rate.out")
    # Calls never finished count as failed too.
    if [[ "$STEP_BAD" == "?" ]]; then STEP_BAD="$calls"; fi
    if ((STEP_OK + STEP_BAD < calls)); then STEP_BAD=$((calls - STEP_OK)); fi
    STEP_TICKS=$((t1 - t0))
}

# ramp NAME MIDDLE_PID UAC_IP TARGET SERVICE: sets BEST_RATE, BEST_CPS, BEST_US (CPU µs per call)
ramp() {
    local name="$1" mid="$2" ip="$3" target="$4" service="$5"
    BEST_RATE=0 BEST_CPS=0 BEST_US="n/a"
    local rate calls tries ok bad cps ticks us
    for rate in $RATES; do
        calls=$((rate * STEP_SECONDS))
        if ((calls > MAX_CALLS)); then calls=$MAX_CALLS; fi
        if ((calls < MIN_CALLS)); then calls=$MIN_CALLS; fi
        for tries in 1 2; do
            wait_quiet
            run_step "$name" "$rate" "$calls" "$mid" "$ip" "$target" "$service"
            ok=$STEP_OK bad=$STEP_BAD cps=$STEP_CPS ticks=$STEP_TICKS
            us="n/a"
            if [[ "$mid" != - ]] && ((ok > 0)); then
                us="$(awk -v t="$ticks" -v hz="$HZ" -v n="$ok" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')"
            fi
            log "$name: -r $rate: $ok ok, $bad failed, achieved $cps cps, middle CPU $us µs/call, UDP rcvbuf drops $STEP_DROPS, switch media bind failures $STEP_BIND"
            if ((bad == 0)); then break; fi
            sleep 3
        done
        if ((bad == 0)); then
            BEST_RATE=$rate
            # The best achieved rate of the steps without failures, and its CPU cost.
            if awk -v a="$cps" -v b="$BEST_CPS" 'BEGIN { exit !(a > b) }'; then BEST_CPS=$cps BEST_US=$us; fi
        else
            break
        fi
        # Achieved under 90% of the asked rate: SIPp or the element is saturated; stop here.
        if awk -v a="$cps" -v r="$rate" 'BEGIN { exit !(a < 0.9 * r) }'; then
            log "$name: achieved rate below 90% of -r $rate: saturated"
            break
        fi
        sleep 1
    done
}

declare -A RATE CPS US

if [[ " $ONLY " == *" direct "* ]]; then
    log "(a) SIPp UAC -> SIPp UAS"
    ramp direct - 127.0.0.1 "127.0.0.1:$UAS_PORT" 201
    RATE[direct]=$BEST_RATE CPS[direct]=$BEST_CPS US[direct]="-"
fi

if [[ " $ONLY " == *" centralino "* ]]; then
    log "(b) SIPp UAC (127.0.0.2, trunk) -> centralino -> SIPp UAS (extension 201)"
    switch_config "$WORK/centralino.toml" "$RTP_PORTS" "127.0.0.1:$METRICS_PORT"
    start_switch "$WORK/centralino.toml" "127.0.0.1:$SW_PORT" "$WORK/data" "$WORK/switch.log"
    sipp -sf "$REPO/tests/sipp/register.xml" -s 201 -au 201 -ap pw201 \
        -key contact_port "$UAS_PORT" -key expires 3600 -m 1 -p "$REG_PORT" -i 127.0.0.1 \
        -timeout 10 -nostdin "127.0.0.1:$SW_PORT" >"$WORK/register.out" 2>&1 || { cat "$WORK/register.out" >&2; exit 1; }
    ramp centralino "$SWITCH_PID" 127.0.0.2 "127.0.0.1:$SW_PORT" 201
    RATE[centralino]=$BEST_RATE CPS[centralino]=$BEST_CPS US[centralino]=$BEST_US
    # Leak check: every call of the ramp has ended on the SIPp side; the switch must drain.
    for i in $(seq 1 "${DRAIN_SECONDS:-40}"); do
        [[ "$(metric "127.0.0.1:$METRICS_PORT" centralino_calls_active)" == 0 ]] && break
        sleep 1
    done
    log "switch after the ramp (+${i}s): calls_active=$(metric "127.0.0.1:$METRICS_PORT" centralino_calls_active)" \
        "media_ports_in_use=$(metric "127.0.0.1:$METRICS_PORT" centralino_media_ports_in_use)" \
        "RSS=$(awk '/VmRSS/ {print $2, $3}' "/proc/$SWITCH_PID/status")"
    if grep -qE "WARN|ERROR" "$WORK/switch.log"; then
        log "switch log warnings (first 10 of $(grep -cE "WARN|ERROR" "$WORK/switch.log")):"
        grep -E "WARN|ERROR" "$WORK/switch.log" | head -10 >&2
    fi
    kill -TERM "$SWITCH_PID" 2>/dev/null || true
    wait "$SWITCH_PID" 2>/dev/null || true
fi

if [[ " $ONLY " == *" kamailio "* ]]; then
    log "(c) SIPp UAC -> Kamailio (tm stateful proxy, t_relay) -> SIPp UAS"
    mkdir -p "$WORK/kam"
    sed -e "s/@KPORT@/$K_PORT/" -e "s/@UASPORT@/$UAS_PORT/" "$BENCH_DIR/kamailio-proxy.cfg" >"$WORK/kamailio.cfg"
    # setsid: Kamailio forks workers; the group is ended on exit.
    setsid kamailio -DD -E -f "$WORK/kamailio.cfg" -m 256 -M 16 -Y "$WORK/kam" >"$WORK/kamailio.log" 2>&1 &
    KAM_PID=$!
    BENCH_PIDS+=("$KAM_PID")
    # Kamailio relays OPTIONS too, so wait for its UDP socket rather than for an answer.
    wait_udp "$K_PORT"
    kill -0 "$KAM_PID" 2>/dev/null || { cat "$WORK/kamailio.log" >&2; exit 1; }
    ramp kamailio "$KAM_PID" 127.0.0.1 "127.0.0.1:$K_PORT" 201
    RATE[kamailio]=$BEST_RATE CPS[kamailio]=$BEST_CPS US[kamailio]=$BEST_US
fi

echo
echo "call setup (INVITE/100/180/200/ACK/BYE/200, no media), $(nproc) CPUs, $(date -u +%FT%TZ)"
printf "%-12s %18s %14s %16s\n" path "best -r, 0 failed" "achieved cps" "middle µs/call"
for k in direct centralino kamailio; do
    if [[ -n "${RATE[$k]:-}" ]]; then printf "%-12s %18s %14s %16s\n" "$k" "${RATE[$k]}" "${CPS[$k]}" "${US[$k]}"; fi
done
if [[ -n "${RATE[centralino]:-}" ]]; then
    if [[ -n "${RATE[direct]:-}" ]]; then echo "ratio centralino/direct (achieved):    $(ratio "${CPS[centralino]}" "${CPS[direct]}")"; fi
    if [[ -n "${RATE[kamailio]:-}" ]]; then
        echo "ratio centralino/kamailio (achieved):  $(ratio "${CPS[centralino]}" "${CPS[kamailio]}")"
        echo "ratio centralino/kamailio (CPU/call):  $(ratio "${US[centralino]}" "${US[kamailio]}")"
    fi
    echo "centralino CPU budget: one core's worth of CPU covers $(awk -v u="${US[centralino]}" 'BEGIN { if (u + 0 > 0) printf "%.0f", 1e6 / u; else print "n/a" }') setups/s"
    floor=5000
    if awk -v a="${CPS[centralino]}" -v f="$floor" 'BEGIN { exit !(a >= f) }'; then
        echo "floor $floor setups/s (achieved, 0 failed): met"
    else
        echo "floor $floor setups/s (achieved, 0 failed): MISSED"
    fi
fi
