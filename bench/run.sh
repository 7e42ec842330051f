#!/usr/bin/env bash
# Runs the benchmark scenarios (BENCHMARKS.md) against wschat and each peer, one after another,
# and writes raw JSON lines, a markdown report and a plot into a results folder.
#
#   bench/run.sh                          everything: build, set up peers, all scenarios, 3 reps
#   bench/run.sh --scenarios 1,3 --peers wschat,go-hub --reps 1
#   bench/run.sh --quick                  a few seconds, wschat and the sink only (CI smoke)
#
# Scenarios: gen (generator against the trivial sink), 1, 2, 3 (saturation sweep), 4 (memory),
# 5 (growth: scenario 1 at 1,000 and 5,000 clients; 100 clients comes from scenario 1),
# 6 (stuck clients: scenarios 1 and 2 again with ten extra clients that never read),
# 7 (everyone reconnects at once: 5,000 clients, every handshake in flight, as after a restart),
# 8 (slow disk: scenario 1 with a history file, on the real disk and with every write and sync
#    of it delayed 300 ms by bench/slowdisk.c; wschat and wschat-baseline only).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS_DIR="$ROOT/bench/peers"
ALL_PEERS="wschat,go-hub,tokio-tungstenite,node-ws,nodejs-websocket"
# Accepted by --peers but never run by default (bench/peers/README.md): wschat at the older
# commit BASELINE_REV, for before/after measurements of a change; wschat with /metrics scraped
# every second, and with --metrics off, for the cost of the metrics.
EXTRA_PEERS="wschat-baseline,wschat-metrics,wschat-nometrics"
SCENARIOS="gen,1,2,3,4,5,6,7,8"
STORM_CLIENTS=5000
PEERS="$ALL_PEERS"
REPS=3
DURATION=10
SWEEP_DURATION=""
# Saturation sweep: messages/s per sender (10 senders, 100 clients: offered deliveries/s is
# 1,000 times this). A peer's sweep stops after two failing rates in a row.
RATES="50 100 150 200 300 500 750 1000 1500 2000 2500 3000 4000 5000 6000 8000 10000 12000 15000"
GEN_RATES="1000 2000 4000 6000 8000 10000 12000 15000 20000"
MEMORY_CLIENTS="1000 5000"
GROWTH_CLIENTS="1000 5000"
OUT=""
SETUP=1
QUICK=0
# Servers listen below the kernel's ephemeral range (32768 and up, see
# /proc/sys/net/ipv4/ip_local_port_range): the generator's thousands of client sockets take
# ports there, and a server could not bind one of them.
PORT=${BENCH_PORT_BASE:-21000}

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; cat <<EOF

Options:
  --scenarios LIST     comma-separated, from gen,1,2,3,4,5,6,7,8 [$SCENARIOS]
  --peers LIST         comma-separated, from $ALL_PEERS [all],
                       or $EXTRA_PEERS (not in "all")
  --reps N             repetitions of each run; the report shows medians [$REPS]
  --duration SECS      sending time per run [$DURATION]
  --sweep-duration S   sending time per rate in the sweeps (gen, 3) [same as --duration]
  --rates "R ..."      sweep rates, messages/s per sender [$RATES]
  --out DIR            results folder [bench/results/DATE]
  --no-setup           do not build or set up peers
  --quick              CI smoke: wschat and the sink, 1 rep, 2 s runs, scenarios gen,1,4,8
Environment: BASELINE_REV=REV, the older commit wschat-baseline builds and runs (required for it)
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --scenarios) SCENARIOS="$2"; shift 2 ;;
    --peers) PEERS="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --sweep-duration) SWEEP_DURATION="$2"; shift 2 ;;
    --rates) RATES="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --no-setup) SETUP=0; shift ;;
    --quick) QUICK=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$QUICK" = 1 ]; then
  SCENARIOS="gen,1,4,8"; PEERS="wschat"; REPS=1; DURATION=2
  GEN_RATES="1000"; MEMORY_CLIENTS="200"
fi
SWEEP_DURATION="${SWEEP_DURATION:-$DURATION}"
OUT="${OUT:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT/logs"
RAW="$OUT/raw.jsonl"
BENCH="$ROOT/target/release/wschat-bench"
has() { [[ ",$1," == *",$2,"* ]]; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

ulimit -n 20000 2>/dev/null || true

# ---- setup ------------------------------------------------------------------------------
if [ "$SETUP" = 1 ]; then
  log "building wschat and wschat-bench (release)"
  (cd "$ROOT" && cargo build --release --quiet -p wschat -p wschat-bench)
  for p in ${PEERS//,/ }; do
    log "setting up $p"
    "$PEERS_DIR/$p/setup.sh"
  done
fi
"$ROOT/bench/machine.sh" > "$OUT/machine.txt" 2>&1 || true

# ---- one server, one load ---------------------------------------------------------------
SERVER_PID=""
# Extra environment for the next server (scenario 8: its history file and the slow-disk shim).
SERVER_ENV=()

# start_server PEER: starts it on a fresh port, waits until it accepts connections.
start_server() {
  local peer="$1"
  PORT=$((PORT + 1))
  if [ "$peer" = sink ]; then
    "$BENCH" sink --port "$PORT" > "$OUT/logs/$peer.$PORT.log" 2>&1 &
  else
    env ${SERVER_ENV[@]+"${SERVER_ENV[@]}"} "$PEERS_DIR/$peer/start.sh" "$PORT" \
      > "$OUT/logs/$peer.$PORT.log" 2>&1 &
  fi
  SERVER_PID=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
      sleep 0.2 # let the probe connection's leave go by
      return 0
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  log "$peer did not start (see $OUT/logs/$peer.$PORT.log)"
  return 1
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
trap stop_server EXIT

# run_load PEER SCENARIO REP [wschat-bench flags...]: a fresh server, one load, one JSON line
# appended to raw.jsonl (also echoed to stdout). Prints nothing when the server did not start.
run_load() {
  local peer="$1" scenario="$2" rep="$3"; shift 3
  local flags=()
  [ -f "$PEERS_DIR/$peer/bench-flags" ] && read -r -a flags < "$PEERS_DIR/$peer/bench-flags"
  start_server "$peer" || { stop_server; return 0; }
  local line
  if line=$("$BENCH" --url "ws://127.0.0.1:$PORT/" --server-pid "$SERVER_PID" "${flags[@]}" \
      --tag "scenario=$scenario" --tag "peer=$peer" --tag "rep=$rep" "$@" \
      2>> "$OUT/logs/wschat-bench.log"); then
    echo "$line" >> "$RAW"
    echo "$line"
  else
    log "wschat-bench failed against $peer (see $OUT/logs/wschat-bench.log)"
  fi
  stop_server
}

# passes: the last JSON line on stdin has nothing lost, no connect failure, p99 < 100 ms.
passes() {
  python3 -c 'import json,sys
d=json.loads(sys.stdin.read().strip().splitlines()[-1])
ok=d["lost"]<=0 and d["connect_failures"]==0 and d["p99_us"]<100000 and d["connected"]>0
sys.exit(0 if ok else 1)'
}

# sweep PEER SCENARIO REP "RATES" [MAX_FAILS]: rising rates until MAX_FAILS (default 2)
# fail in a row.
sweep() {
  local peer="$1" scenario="$2" rep="$3" rates="$4" max_fails="${5:-2}" fails=0 out
  for r in $rates; do
    # Not in $(...): run_load must advance PORT here, so each rate gets its own server log.
    run_load "$peer" "$scenario" "$rep" -n 100 -k 10 -r "$r" -d "$SWEEP_DURATION" \
      > "$OUT/last-run.json"
    out=$(cat "$OUT/last-run.json")
    [ -n "$out" ] || break
    if echo "$out" | passes; then fails=0; else fails=$((fails + 1)); fi
    log "  $peer rate $r/s per sender: $(echo "$out" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print("%d deliveries/s, p99 %d us, lost %d" % (d["deliveries_per_s"], d["p99_us"], d["lost"]))')"
    [ "$fails" -lt "$max_fails" ] || break
  done
}

# slow_disk PEER REP: scenario 1 with a history file, on this disk, then with bench/slowdisk.c
# delaying every write and sync of that file by 300 ms (a busy SD card). The run's JSON line
# gets history_file_lines: the lines in the file after a clean stop.
SLOWDISK_SO="$OUT/slowdisk.so"
slow_disk() {
  local peer="$1" rep="$2" disk hist
  case "$peer" in wschat|wschat-baseline) ;; *) log "scenario 8: $peer has no history file, skipped"; return 0 ;; esac
  [ -f "$SLOWDISK_SO" ] || cc -O2 -shared -fPIC -o "$SLOWDISK_SO" "$ROOT/bench/slowdisk.c" -ldl
  mkdir -p "$OUT/history"
  for disk in fast slow; do
    log "scenario 8 (slow disk): $peer, $disk disk"
    hist="$OUT/history/$peer.$disk.$rep"
    rm -f "$hist.jsonl" "$hist.tmp"
    SERVER_ENV=("WSCHAT_HISTORY_FILE=$hist.jsonl")
    [ "$disk" = slow ] && SERVER_ENV+=("LD_PRELOAD=$SLOWDISK_SO" "SLOWDISK_PATH=$hist")
    run_load "$peer" 8 "$rep" -n 100 -k 10 -r 50 -b 64 -d "$DURATION" --tag "disk=$disk" \
      > "$OUT/last-run.json"
    SERVER_ENV=()
    [ -s "$OUT/last-run.json" ] || continue
    python3 - "$RAW" "$hist.jsonl" <<'PY'
import json, sys
raw, hist = sys.argv[1], sys.argv[2]
lines = open(raw).read().splitlines()
d = json.loads(lines[-1])
try:
    d["history_file_lines"] = sum(1 for l in open(hist) if l.strip())
except FileNotFoundError:
    d["history_file_lines"] = 0
lines[-1] = json.dumps(d)
open(raw, "w").write("\n".join(lines) + "\n")
PY
  done
}

# ---- scenarios ----------------------------------------------------------------------------
for rep in $(seq "$REPS"); do
  log "=== repetition $rep of $REPS"
  if has "$SCENARIOS" gen; then
    log "generator saturation against the sink"
    sweep sink gen "$rep" "$GEN_RATES" 99 # every rate: where it tops out is the point
  fi
  for peer in ${PEERS//,/ }; do
    if has "$SCENARIOS" 1; then
      log "scenario 1: $peer"
      run_load "$peer" 1 "$rep" -n 100 -k 10 -r 50 -b 64 -d "$DURATION" > /dev/null
    fi
    if has "$SCENARIOS" 2; then
      log "scenario 2: $peer"
      run_load "$peer" 2 "$rep" -n 1000 -k 4 -r 25 -b 64 -d "$DURATION" > /dev/null
    fi
    if has "$SCENARIOS" 3; then
      log "scenario 3 (saturation sweep): $peer"
      sweep "$peer" 3 "$rep" "$RATES"
    fi
    if has "$SCENARIOS" 4; then
      log "scenario 4 (memory): $peer"
      for n in 0 $MEMORY_CLIENTS; do
        run_load "$peer" 4 "$rep" -n "$n" -k 0 -d 0 --drain 0 --settle 1 > /dev/null
      done
    fi
    if has "$SCENARIOS" 5; then
      log "scenario 5 (growth): $peer"
      for n in $GROWTH_CLIENTS; do
        run_load "$peer" 5 "$rep" -n "$n" -k 10 -r 50 -b 64 -d "$DURATION" > /dev/null
      done
    fi
    if has "$SCENARIOS" 6; then
      log "scenario 6 (ten stuck clients during scenarios 1 and 2): $peer"
      run_load "$peer" 6 "$rep" -n 100 -k 10 -r 50 -b 64 -d "$DURATION" --stuck 10 \
        --tag load=1 > /dev/null
      run_load "$peer" 6 "$rep" -n 1000 -k 4 -r 25 -b 64 -d "$DURATION" --stuck 10 \
        --tag load=2 > /dev/null
    fi
    if has "$SCENARIOS" 7; then
      log "scenario 7 (everyone reconnects at once): $peer"
      run_load "$peer" 7 "$rep" -n "$STORM_CLIENTS" -k 0 -d 0 --drain 0 --settle 1 \
        --settle-max 120 --connect-batch "$STORM_CLIENTS" > /dev/null
    fi
    if has "$SCENARIOS" 8; then
      slow_disk "$peer" "$rep"
    fi
  done
done

log "writing the report"
python3 "$ROOT/bench/report.py" "$OUT"
log "done: $OUT/REPORT.md"

# Quick mode is a smoke test: it fails unless every scenario 1 and 8 run delivered everything
# (and scenario 8's history file, slow disk or not, holds every line sent).
if [ "$QUICK" = 1 ]; then
  python3 - "$RAW" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
s1 = [r for r in runs if r["scenario"] == "1"]
bad = [r for r in s1 if r["lost"] > 0 or r["connect_failures"] or r["connected"] == 0]
# The slow disk: nothing lost on the wire, every line in the file (latency is for the
# figures, not a pass mark: this machine may be busy).
s8 = [r for r in runs if r["scenario"] == "8"]
bad += [r for r in s8 if r["lost"] > 0 or r["connected"] == 0
        or (r.get("history_file_lines") or 0) < r["sent"]]
print(f"bench-quick: {len(s1) + len(s8) - len(bad)} passed, {len(bad)} failed")
sys.exit(1 if bad or not s1 or len(s8) != 2 else 0)
PY
fi
