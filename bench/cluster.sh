#!/usr/bin/env bash
# Scenarios 1 and 3 with the clients spread over two wschat nodes sharing one redis-server
# (--redis), against one node alone in the same run, alternating, on loopback. CPU is read
# from /proc for each node and for Redis. Results: raw.jsonl and a table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'EOF'
bench/cluster.sh: one wschat node against two nodes on one redis-server (scenarios 1 and 3).

  bench/cluster.sh [--reps N] [--duration SECS] [--rates "R ..."] [--out DIR]

  --reps N          alternating repetitions of each setup [2]
  --duration SECS   sending time of a scenario 1 run [10]
  --sweep-duration  sending time of each scenario 3 rate [5]
  --rates "R ..."   scenario 3 rates, messages/s per sender [500 1000 2000 3000 4000 6000 8000]
  --out DIR         results folder [bench/results/cluster-DATE]
Environment: BENCH_PORT_BASE (first port used, default 19000); BASELINE_BIN, a wschat binary
of an older commit (bench/peers/wschat-baseline/setup.sh builds one): then a third setup,
"two-base", runs two nodes of it, alternating with the others. Needs redis-server, redis-cli and
cargo build --release --workspace.
EOF
}

REPS=2 DURATION=10 SWEEP_DURATION=5 RATES="500 1000 2000 3000 4000 6000 8000" OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --sweep-duration) SWEEP_DURATION="$2"; shift 2 ;;
    --rates) RATES="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
OUT="${OUT:-bench/results/cluster-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT/logs"
RAW="$OUT/raw.jsonl"
BIN=target/release/wschat
BENCH=target/release/wschat-bench
PORT="${BENCH_PORT_BASE:-19000}"
REDIS_PORT="$PORT"
PIDS=()

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# The process's user + system CPU in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  log "nothing listens on $1"; return 1
}

stop_nodes() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
cleanup() { stop_nodes; [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null || true; }
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  > "$OUT/logs/redis.log" 2>&1 &
REDIS_PID=$!
wait_port "$REDIS_PORT"

# run SETUP SCENARIO REP [wschat-bench flags...]: fresh nodes (one, or two on Redis), one
# load, one JSON line with the nodes' and Redis' CPU added, appended to raw.jsonl.
run() {
  local setup="$1" scenario="$2" rep="$3"; shift 3
  local nodes=1 urls=() redis=() bin="$BIN"
  [ "$setup" != one ] && nodes=2 && redis=(--redis "redis://127.0.0.1:$REDIS_PORT/")
  [ "$setup" = two-base ] && bin="$BASELINE_BIN"
  # Each run starts on an empty Redis: the shared history of the last run's lines would be
  # replayed to this run's clients, as deliveries the generator did not send.
  redis-cli -p "$REDIS_PORT" FLUSHALL > /dev/null
  for _ in $(seq "$nodes"); do
    PORT=$((PORT + 1))
    "$bin" --bind 127.0.0.1 --port "$PORT" --rate-limit 0 --max-clients 20000 "${redis[@]}" \
      > "$OUT/logs/$setup.$PORT.log" 2>&1 &
    PIDS+=($!)
    urls+=(--url "ws://127.0.0.1:$PORT/")
    wait_port "$PORT"
  done
  sleep 0.2
  local before=() redis_before
  for pid in "${PIDS[@]}"; do before+=("$(ticks "$pid")"); done
  redis_before=$(ticks "$REDIS_PID")
  local line
  line=$("$BENCH" "${urls[@]}" --tag "scenario=$scenario" --tag "setup=$setup" \
    --tag "rep=$rep" "$@" 2>> "$OUT/logs/wschat-bench.log") || line=""
  local nodes_ticks=0 i=0
  for pid in "${PIDS[@]}"; do
    nodes_ticks=$((nodes_ticks + $(ticks "$pid") - before[i])); i=$((i + 1))
  done
  local redis_ticks=$(($(ticks "$REDIS_PID") - redis_before))
  stop_nodes
  [ -n "$line" ] || { log "wschat-bench failed ($setup)"; return 0; }
  python3 -c 'import json,sys,os
d=json.loads(sys.argv[1]); hz=os.sysconf("SC_CLK_TCK")
d["nodes_cpu_s"]=int(sys.argv[2])/hz; d["redis_cpu_s"]=int(sys.argv[3])/hz
print(json.dumps(d))' "$line" "$nodes_ticks" "$redis_ticks" | tee -a "$RAW"
}

passes() {
  python3 -c 'import json,sys
d=json.loads(sys.stdin.read())
sys.exit(0 if d["lost"]<=0 and d["connect_failures"]==0 and d["p99_us"]<100000 else 1)'
}

SETUPS="one two"
[ -n "${BASELINE_BIN:-}" ] && SETUPS="one two two-base"
for rep in $(seq "$REPS"); do
  for setup in $SETUPS; do
    log "rep $rep, $setup node(s): scenario 1"
    run "$setup" 1 "$rep" -n 100 -k 10 -r 50 -b 64 -d "$DURATION" > /dev/null
  done
  for setup in $SETUPS; do
    log "rep $rep, $setup node(s): scenario 3"
    fails=0
    for r in $RATES; do
      out=$(run "$setup" 3 "$rep" -n 100 -k 10 -r "$r" -d "$SWEEP_DURATION")
      [ -n "$out" ] || break
      if echo "$out" | passes; then fails=0; else fails=$((fails + 1)); fi
      [ "$fails" -lt 2 ] || break
    done
  done
done

python3 - "$RAW" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(xs): return statistics.median(xs) if xs else float("nan")
def ms(us): return "—" if us != us else f"{us / 1000:.2f} ms"
print("| setup | scenario 1 p50 | p99 | cross-node p50 | cross-node p99 | lost | nodes' CPU per delivery | Redis' CPU per delivery | scenario 3 saturation (deliveries/s, nothing lost, p99 < 100 ms) |")
print("|---|---|---|---|---|---|---|---|---|")
for setup in ["one", "two", "two-base"]:
    s1 = [r for r in rows if r["setup"] == setup and r["scenario"] == "1"]
    if not s1:
        continue
    per = lambda key: med([r[key] * 1e6 / r["delivered"] for r in s1 if r["delivered"]])
    s3 = [r for r in rows if r["setup"] == setup and r["scenario"] == "3"
          and r["lost"] <= 0 and r["connect_failures"] == 0 and r["p99_us"] < 100000]
    best = {}
    for r in s3:
        best[r["rep"]] = max(best.get(r["rep"], 0), r["deliveries_per_s"])
    print(f"| {setup} node{'' if setup == 'one' else 's'} | {med([r['p50_us'] for r in s1]) / 1000:.2f} ms "
          f"| {med([r['p99_us'] for r in s1]) / 1000:.2f} ms "
          f"| {ms(med([r['cross_p50_us'] for r in s1 if 'cross_p50_us' in r]))} "
          f"| {ms(med([r['cross_p99_us'] for r in s1 if 'cross_p99_us' in r]))} "
          f"| {sum(r['lost'] for r in s1)} "
          f"| {per('nodes_cpu_s'):.2f} µs | {per('redis_cpu_s'):.2f} µs "
          f"| {med(list(best.values())):,.0f} (per rep: {', '.join(f'{v:,.0f}' for v in best.values())}) |")
EOF
