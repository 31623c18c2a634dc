# Shared helpers for the bench/ scripts. Sourced, not run.
# Everything here talks to loopback (127.0.0.0/8) only.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
CENTRALINO="${CENTRALINO:-$REPO/target/release/centralino}"
HZ="$(getconf CLK_TCK)"
# The scripts' SIP and control ports are offsets from this (call_setup +60..+90, register
# +160..+190, rtp_relay +222..+280, profile +360..+381). Change it if another load runs.
BENCH_PORT_BASE="${BENCH_PORT_BASE:-17000}"

# PIDs this script started; killed (by PID, never by name) on exit.
BENCH_PIDS=()
WORK=""

bench_init() {
    WORK="$(mktemp -d "/tmp/centralino-bench-$1.XXXXXX")"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    # Other work shares this machine: run the bench (and everything it starts from here on)
    # ahead of it, so that figures measure the elements, not the neighbours. BENCH_NICE=0 to not.
    renice -n "${BENCH_NICE:--10}" -p $$ >/dev/null 2>&1 || true
    # Opt-in: a larger default UDP receive buffer for sockets created during the run (the
    # switch does not size its own; Kamailio and SIPp -buff_size do). Restored on exit.
    if [[ -n "${RMEM_DEFAULT:-}" ]]; then
        SAVED_RMEM_DEFAULT="$(cat /proc/sys/net/core/rmem_default)"
        echo "$RMEM_DEFAULT" >/proc/sys/net/core/rmem_default
        log "net.core.rmem_default = $RMEM_DEFAULT for this run (was $SAVED_RMEM_DEFAULT)"
    fi
}

bench_cleanup() {
    local pid
    if [[ -n "${SAVED_RMEM_DEFAULT:-}" ]]; then
        echo "$SAVED_RMEM_DEFAULT" >/proc/sys/net/core/rmem_default || true
    fi
    # Only our own children still running (a PID already reaped may belong to someone else now).
    local mine=()
    for pid in "${BENCH_PIDS[@]:-}"; do
        [[ -n "$pid" ]] || continue
        [[ "$(awk '{ print $4 }' "/proc/$pid/stat" 2>/dev/null)" == "$$" ]] && mine+=("$pid")
    done
    for pid in "${mine[@]:-}"; do
        [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null || true
    done
    if ((${#mine[@]})); then sleep 0.5; fi
    for pid in "${mine[@]:-}"; do
        [[ -n "$pid" ]] || continue
        # A process started with setsid leads its own group: end the group (Kamailio's workers).
        if [[ "$(awk '{ print $5 }' "/proc/$pid/stat" 2>/dev/null)" == "$pid" ]]; then
            kill -KILL -- "-$pid" 2>/dev/null || true
        else
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    if [[ -n "${KEEP_WORK:-}" ]]; then
        echo "work files kept in $WORK" >&2
    elif [[ -n "$WORK" ]]; then
        rm -rf "$WORK"
    fi
}

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# Installs Debian packages whose command is missing: need CMD PKG [CMD PKG ...].
need() {
    local missing=()
    while (($#)); do
        command -v "$1" >/dev/null 2>&1 || missing+=("$2")
        shift 2
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        # policy-rc.d keeps the packages' services from starting.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# Builds the switch unless CENTRALINO points at a binary already.
build_switch() {
    if [[ -z "${NO_BUILD:-}" ]]; then
        log "cargo build --release -p switch"
        (cd "$REPO" && cargo build --release -p switch -q)
    fi
    [[ -x "$CENTRALINO" ]] || { echo "no switch binary at $CENTRALINO" >&2; exit 1; }
}

# Waits (up to 5 s) for other engineers' rustc to finish, so figures are less noisy.
wait_quiet() {
    local i
    for i in $(seq 1 50); do
        pgrep -x rustc >/dev/null 2>&1 || pgrep -f 'bin/rustc' >/dev/null 2>&1 || return 0
        sleep 0.1
    done
    log "note: rustc is running on this machine; figures are noisier"
}

# utime+stime, in clock ticks, of PID and of its live descendants (threads are included).
cpu_ticks() {
    local total=0 p pids
    pids="$(descendants "$1")"
    for p in $pids; do
        local stat
        stat="$(cat "/proc/$p/stat" 2>/dev/null)" || continue
        stat="${stat##*) }"
        # after "pid (comm) ": field 3 is state ... utime is field 14 overall = index 11 here.
        set -- $stat
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}

descendants() {
    local p="$1" c
    echo "$p"
    for c in $(pgrep -P "$p" 2>/dev/null || true); do
        descendants "$c"
    done
}

# Config for the switch: the example dialplan with [switch] settings replaced.
# switch_config OUT rtp_ports metrics [key value ...]
switch_config() {
    local out="$1" rtp="$2" metrics="$3"
    shift 3
    local extra=""
    while (($#)); do
        extra+="$1 = $2"$'\n'
        shift 2
    done
    awk -v rtp="$rtp" -v metrics="$metrics" -v extra="$extra" '
        /^\[/ { in_switch = ($0 == "[switch]"); print; if (in_switch) { print "rtp_ports = \"" rtp "\""; print "metrics = \"" metrics "\""; printf "%s", extra } next }
        in_switch && /^(rtp_ports|metrics) *=/ { next }
        { print }
    ' "$REPO/dialplans/example.toml" >"$out"
    "$CENTRALINO" check "$out"
}

# Starts the switch; sets SWITCH_PID. start_switch CONFIG LISTEN DATADIR LOG
start_switch() {
    RUST_LOG="${RUST_LOG:-warn}" "$CENTRALINO" run --config "$1" --listen "$2" --data-dir "$3" 2>"$4" &
    SWITCH_PID=$!
    BENCH_PIDS+=("$SWITCH_PID")
    local i
    for i in $(seq 1 100); do
        if python3 "$BENCH_DIR/sipping.py" "$2" 2>/dev/null; then
            return 0
        fi
        kill -0 "$SWITCH_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "switch did not start; log:" >&2
    tail -20 "$4" >&2
    exit 1
}

# Waits (5 s at most) until something listens on UDP 127.0.0.1:PORT.
wait_udp() {
    local hex i
    hex="$(printf '%04X' "$1")"
    for i in $(seq 1 50); do
        grep -q ":$hex " /proc/net/udp && { sleep 0.5; return 0; }
        sleep 0.1
    done
    return 1
}

# Exits if another process holds one of these ports (UDP or TCP, any address).
ports_free() {
    local p hex
    for p in "$@"; do
        hex="$(printf '%04X' "$p")"
        # UDP: any socket; TCP: listening ones only (state 0A), not TIME_WAIT leftovers.
        if awk -v h="$hex" 'FNR > 1 { split($2, a, ":"); if (a[length(a)] == h && (FILENAME ~ /udp/ || $4 == "0A")) found = 1 } END { exit !found }' \
            /proc/net/udp /proc/net/udp6 /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
            echo "port $p is in use by another process; set BENCH_PORT_BASE to move the bench's ports" >&2
            exit 1
        fi
    done
}

# One metric from the switch's Prometheus endpoint.
metric() {
    python3 - "$1" "$2" <<'EOF'
import sys, urllib.request
try:
    text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=2).read().decode()
except Exception:
    print("?"); sys.exit(0)
for line in text.splitlines():
    if line.startswith(sys.argv[2] + " "):
        print(line.split()[1]); break
else:
    print("?")
EOF
}

# Parses a SIPp final screen: prints "successful failed rate" (rate: cumulative cps).
sipp_stats() {
    awk -F'|' '
        /Successful call/ { gsub(/ /, "", $3); ok = $3 }
        /Failed call/ { gsub(/ /, "", $3); bad = $3 }
        /Call Rate/ { split($3, a, " "); rate = a[1] }
        /Elapsed Time/ { el = $3 }
        END { print (ok == "" ? 0 : ok), (bad == "" ? "?" : bad), (rate == "" ? 0 : rate) }
    ' "$1"
}

# System-wide UDP receive-buffer drops (RcvbufErrors in /proc/net/snmp).
udp_drops() { awk '/^Udp:/ { n++; if (n == 2) print $6 }' /proc/net/snmp; }

# Per-socket drop counters (ss skmem d<N>) of the UDP sockets on 127.x:PORT ..., as "port:drops".
sock_drops() {
    local p out=""
    for p in "$@"; do
        out+=" $p:$(ss -uamn "sport = :$p" 2>/dev/null | grep -o ',d[0-9]*)' | head -1 | tr -dc 0-9)"
    done
    echo "${out# }"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
