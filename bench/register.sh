#!/usr/bin/env bash
# REGISTERs per second with digest (REGISTER, 401, REGISTER with credentials, 200; MD5,
# qop=auth), users 201..205 from an injection file, through centralino beside Kamailio
# (auth + usrloc in memory, no database). Ramps the rate; reports the highest rate with no
# failed registration and the server's CPU time per registration. Loopback only; every SIPp
# run is bounded by -m and -timeout; everything started here is stopped on exit.
#
# Environment: RATES, MAX_CALLS (per step, default 40000), STEP_SECONDS (default 3),
# ONLY="centralino kamailio", KAMAILIO_AUTH=digest|none (none: Kamailio saves without auth).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RATES="${RATES:-5000 10000 15000 20000 25000 30000 40000 50000}"
MAX_CALLS="${MAX_CALLS:-40000}"
MIN_CALLS="${MIN_CALLS:-10000}"
STEP_SECONDS="${STEP_SECONDS:-3}"
ONLY="${ONLY:-centralino kamailio}"
KAMAILIO_AUTH="${KAMAILIO_AUTH:-digest}"

B=$BENCH_PORT_BASE
SW_PORT=$((B + 160)) METRICS_PORT=$((B + 161)) UAC_PORT=$((B + 180)) CONTACT_PORT=$((B + 170)) K_PORT=$((B + 190))
ports_free "$SW_PORT" "$METRICS_PORT" "$UAC_PORT" "$K_PORT"

need sipp sip-tester kamailio kamailio
build_switch
bench_init register

{ echo SEQUENTIAL; for u in 201 202 203 204 205; do echo "$u;[authentication username=$u password=pw$u]"; done; } >"$WORK/users.csv"

# ramp NAME SERVER_PID TARGET: sets BEST_RATE BEST_CPS BEST_US
ramp() {
    local name="$1" mid="$2" target="$3"
    BEST_RATE=0 BEST_CPS=0 BEST_US="n/a"
    local rate calls tries ok bad cps t0 t1 us out d0 drops
    for rate in $RATES; do
        calls=$((rate * STEP_SECONDS))
        if ((calls > MAX_CALLS)); then calls=$MAX_CALLS; fi
        if ((calls < MIN_CALLS)); then calls=$MIN_CALLS; fi
        for tries in 1 2; do
            wait_quiet
            out="$WORK/reg-$name-$rate-$tries.out"
            t0="$(cpu_ticks "$mid")"
            d0="$(udp_drops)"
            sipp -sf "$BENCH_DIR/register_inf.xml" -inf "$WORK/users.csv" -key contact_port "$CONTACT_PORT" \
                -i 127.0.0.1 -p "$UAC_PORT" -r "$rate" -rp 1000 -m "$calls" -l 30000 \
                -timeout 60 -recv_timeout 10000 -buff_size 4194304 -nostdin "$target" >"$out" 2>&1 || true
            t1="$(cpu_ticks "$mid")"
            drops="$(($(udp_drops) - d0)) (sockets since start: $(sock_drops "$SW_PORT" "$K_PORT" "$UAC_PORT"))"
            read -r ok bad cps < <(sipp_stats "$out")
            if [[ "$bad" == "?" ]]; then bad=$calls; fi
            if ((ok + bad < calls)); then bad=$((calls - ok)); fi
            us="n/a"
            if ((ok > 0)); then us="$(awk -v t="$((t1 - t0))" -v hz="$HZ" -v n="$ok" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')"; fi
            log "$name: -r $rate: $ok ok, $bad failed, achieved $cps/s, server CPU $us µs/registration, UDP rcvbuf drops $drops"
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

if [[ " $ONLY " == *" centralino "* ]]; then
    log "centralino registrar (digest, bindings in SQLite)"
    switch_config "$WORK/centralino.toml" "20000-29999" "127.0.0.1:$METRICS_PORT"
    start_switch "$WORK/centralino.toml" "127.0.0.1:$SW_PORT" "$WORK/data" "$WORK/switch.log"
    ramp centralino "$SWITCH_PID" "127.0.0.1:$SW_PORT"
    RATE[centralino]=$BEST_RATE CPS[centralino]=$BEST_CPS US[centralino]=$BEST_US
    log "switch: registrations_active=$(metric "127.0.0.1:$METRICS_PORT" centralino_registrations_active)" \
        "RSS=$(awk '/VmRSS/ {print $2, $3}' "/proc/$SWITCH_PID/status")"
    if grep -qE "WARN|ERROR" "$WORK/switch.log"; then
        log "switch log warnings (first 10 of $(grep -cE "WARN|ERROR" "$WORK/switch.log")):"
        grep -E "WARN|ERROR" "$WORK/switch.log" | head -10 >&2
    fi
    kill -TERM "$SWITCH_PID" 2>/dev/null || true
    wait "$SWITCH_PID" 2>/dev/null || true
fi

if [[ " $ONLY " == *" kamailio "* ]]; then
    if [[ "$KAMAILIO_AUTH" == digest ]]; then
        auth='$var(pw) = "pw" + $fU;\n    if (!pv_www_authenticate("centralino.example", "$var(pw)", "0")) {\n        www_challenge("centralino.example", "1");\n        exit;\n    }'
        scenario="$BENCH_DIR/register_inf.xml"
        log "Kamailio registrar (auth pv_www_authenticate, usrloc in memory)"
    else
        auth='# no authentication'
        log "Kamailio registrar WITHOUT digest (KAMAILIO_AUTH=none): not comparable to centralino"
    fi
    mkdir -p "$WORK/kam"
    sed -e "s/@KPORT@/$K_PORT/" -e "s|@AUTH@|$auth|" "$BENCH_DIR/kamailio-registrar.cfg" >"$WORK/kamailio.cfg"
    setsid kamailio -DD -E -f "$WORK/kamailio.cfg" -m 256 -M 16 -Y "$WORK/kam" >"$WORK/kamailio.log" 2>&1 &
    KAM_PID=$!
    BENCH_PIDS+=("$KAM_PID")
    wait_udp "$K_PORT"
    kill -0 "$KAM_PID" 2>/dev/null || { cat "$WORK/kamailio.log" >&2; exit 1; }
    ramp kamailio "$KAM_PID" "127.0.0.1:$K_PORT"
    RATE[kamailio]=$BEST_RATE CPS[kamailio]=$BEST_CPS US[kamailio]=$BEST_US
fi

echo
echo "REGISTER with digest (2 requests, 401 + 200 per registration), $(nproc) CPUs, $(date -u +%FT%TZ)"
printf "%-12s %18s %16s %18s\n" server "best -r, 0 failed" "achieved reg/s" "server µs/reg"
for k in centralino kamailio; do
    if [[ -n "${RATE[$k]:-}" ]]; then printf "%-12s %18s %16s %18s\n" "$k" "${RATE[$k]}" "${CPS[$k]}" "${US[$k]}"; fi
done
if [[ -n "${RATE[centralino]:-}" ]]; then
    if [[ -n "${RATE[kamailio]:-}" ]]; then
        echo "ratio centralino/kamailio (achieved):    $(ratio "${CPS[centralino]}" "${CPS[kamailio]}")"
        echo "ratio centralino/kamailio (CPU per reg): $(ratio "${US[centralino]}" "${US[kamailio]}")"
    fi
    echo "centralino CPU budget: one core's worth of CPU covers $(awk -v u="${US[centralino]}" 'BEGIN { if (u + 0 > 0) printf "%.0f", 1e6 / u; else print "n/a" }') registrations/s (x2 REGISTER requests)"
    floor=20000
    if awk -v a="${CPS[centralino]}" -v f="$floor" 'BEGIN { exit !(a >= f) }'; then
        echo "floor $floor REGISTER/s (achieved, 0 failed): met"
    else
        echo "floor $floor REGISTER/s (achieved, 0 failed): MISSED"
    fi
fi
