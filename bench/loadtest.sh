#!/usr/bin/env bash
# Load benchmark of jwt-authz against two floors, both on loopback, the
# server pinned to CPU 0 and the load on CPU 1 (taskset). See
# docs/performance.md.
#
# Servers: bench/floor (an ext_authz server that answers an empty OK
# without work: gRPC's own cost), bench/floor -shaped (the same, sending a
# prebuilt allowed answer of jwt-authz's shape), and jwt-authz with the
# scenarios: one hot token; distinct RS256 tokens (a 1 000-entry cache
# over DISTINCT tokens round-robin: every Check verifies, inserts and
# evicts); 90% valid / 10% invalid. ROUNDS rounds, the order rotated each
# round (interleaved, so a noisy neighbour hits every server alike); every
# jwt-authz result is printed as a ratio to both floors of the same round,
# then the medians over rounds. Last, RSS with RSS_TOKENS cached tokens
# under the GOMEMLIMIT and GOGC of deploy/kubernetes/deployment.yaml.
#
# Env: DUR (per run, default 3s), WARMUP (500ms), ROUNDS (3), CONC (32),
# CONNS (4), DISTINCT (10000), RSS_TOKENS (100000; 0 skips), OUT
# (.run/loadtest).
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-3s}
WARMUP=${WARMUP:-500ms}
ROUNDS=${ROUNDS:-3}
CONC=${CONC:-32}
CONNS=${CONNS:-4}
DISTINCT=${DISTINCT:-10000}
RSS_TOKENS=${RSS_TOKENS:-100000}
OUT=${OUT:-.run/loadtest}
SRV_CPU=0
LOAD_CPU=1
mkdir -p "$OUT" bin

log() { printf '%s\n' "$*" >&2; }

log "== build"
go build -o bin/jwt-authz ./cmd/jwt-authz
go build -o bin/floor ./bench/floor
go build -o bin/loadgen ./bench/loadgen
go build -o bin/mint ./bench/mint

log "== mint tokens"
bin/mint -dir "$OUT" -distinct "$DISTINCT" -rss "$RSS_TOKENS"

log "== bare RS256 verification (go test -bench BareRS256, pinned to CPU $SRV_CPU)"
BARE_NS=$(taskset -c $SRV_CPU go test -run '^$' -bench '^BenchmarkBareRS256$' -benchtime 2000x -cpu 1 ./authz/ |
  awk '/^BenchmarkBareRS256/ {print $3}')
log "bare RS256: ${BARE_NS} ns/op"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# listen_addrs PID: the TCP ports PID listens on, one a line.
listen_addrs() { ss -ltnpH 2>/dev/null | awk -v p="pid=$1," 'index($0, p) {print $4}'; }

SRV_PID=
SRV_ADDR=
HTTP_ADDR=
start_floor() { # [-shaped]
  : >"$OUT/floor.addr"
  taskset -c $SRV_CPU bin/floor -addr 127.0.0.1:0 "$@" >"$OUT/floor.addr" &
  SRV_PID=$!; PIDS+=("$SRV_PID")
  for _ in $(seq 100); do [ -s "$OUT/floor.addr" ] && break; sleep 0.05; done
  SRV_ADDR=$(head -1 "$OUT/floor.addr")
}
start_authz() { # CONFIG
  taskset -c $SRV_CPU bin/jwt-authz serve -config "$OUT/$1" \
    -grpc-addr 127.0.0.1:0 -http-addr 127.0.0.1:0 -log-level warn 2>"$OUT/jwt-authz.log" &
  SRV_PID=$!; PIDS+=("$SRV_PID")
  SRV_ADDR= HTTP_ADDR=
  for _ in $(seq 200); do
    for a in $(listen_addrs "$SRV_PID"); do
      # The HTTP listener answers /metrics; the other one is gRPC.
      if curl -fsS -o /dev/null "http://$a/metrics" 2>/dev/null; then HTTP_ADDR=$a; else SRV_ADDR=$a; fi
    done
    [ -n "$SRV_ADDR" ] && [ -n "$HTTP_ADDR" ] && break
    sleep 0.05
  done
  [ -n "$SRV_ADDR" ] || { log "jwt-authz did not start:"; cat "$OUT/jwt-authz.log" >&2; exit 1; }
}
stop_server() { kill "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true; }

# run LABEL TOKENFILE: loadgen on CPU 1 against the current server.
run() {
  taskset -c $LOAD_CPU bin/loadgen -addr "$SRV_ADDR" -conns "$CONNS" -c "$CONC" -d "$DUR" -warmup "$WARMUP" \
    -tokens "$2" -server-pid "$SRV_PID" -label "$1" | tee -a "$OUT/results.txt"
}

# scenario NAME ROUND: one server, one run.
scenario() {
  case $1 in
  floor) start_floor; run "r$2/floor" "$OUT/hot.txt" ;;
  shaped) start_floor -shaped; run "r$2/shaped" "$OUT/hot.txt" ;;
  hot) start_authz config.yaml; run "r$2/hot" "$OUT/hot.txt" ;;
  distinct) start_authz config-distinct.yaml; run "r$2/distinct" "$OUT/distinct.txt" ;;
  mix) start_authz config.yaml; run "r$2/mix" "$OUT/mix.txt" ;;
  esac
  stop_server
}

: >"$OUT/results.txt"
SCENARIOS=(floor shaped hot distinct mix)
for round in $(seq "$ROUNDS"); do
  log "== round $round"
  n=${#SCENARIOS[@]}
  for i in $(seq 0 $((n - 1))); do
    scenario "${SCENARIOS[$(((i + round - 1) % n))]}" "$round"
  done
done

if [ "$RSS_TOKENS" -gt 0 ]; then
  # The Deployment's Go runtime settings.
  deploy_env() { awk -v n="name: $1" 'index($0, n) {getline; gsub(/[" ]|value:/, ""); print; exit}' deploy/kubernetes/deployment.yaml; }
  MEMLIMIT=$(deploy_env GOMEMLIMIT)
  GCPCT=$(deploy_env GOGC)
  log "== RSS with $RSS_TOKENS cached tokens, GOMEMLIMIT=${MEMLIMIT:-unset} GOGC=${GCPCT:-unset} (the Deployment's)"
  GOMEMLIMIT=${MEMLIMIT:-off} GOGC=${GCPCT:-100} start_authz config.yaml
  RSS0=$(awk '/VmRSS/ {print $2}' /proc/$SRV_PID/status)
  # One pass over rss.txt (EdDSA: quick to verify); -d bounds it, and the
  # cache gauge says how many entries were reached.
  taskset -c $LOAD_CPU bin/loadgen -addr "$SRV_ADDR" -conns "$CONNS" -c "$CONC" -warmup 0s \
    -d "${RSS_DUR:-60s}" -tokens "$OUT/rss.txt" -label rss-fill >/dev/null &
  LG=$!
  for _ in $(seq 600); do
    n=$(curl -fsS "http://$HTTP_ADDR/metrics" | awk '/^jwt_authz_token_cache_entries / {print int($2)}')
    [ "${n:-0}" -ge "$RSS_TOKENS" ] && break
    sleep 0.1
  done
  kill "$LG" 2>/dev/null || true; wait "$LG" 2>/dev/null || true
  ENTRIES=$(curl -fsS "http://$HTTP_ADDR/metrics" | awk '/^jwt_authz_token_cache_entries / {print int($2)}')
  RSS1=$(awk '/VmRSS/ {print $2}' /proc/$SRV_PID/status)
  HEAP=$(curl -fsS "http://$HTTP_ADDR/metrics" | awk '/^go_memstats_heap_inuse_bytes / {printf "%d", $2}')
  echo "label=rss gomemlimit=${MEMLIMIT:-unset} gogc=${GCPCT:-unset} entries=$ENTRIES rss_start_kib=$RSS0 rss_kib=$RSS1 heap_inuse=$HEAP" | tee -a "$OUT/results.txt"
  stop_server
fi

log "== summary (medians over $ROUNDS interleaved rounds; ratios within each round, then their median)"
python3 - "$OUT/results.txt" "$BARE_NS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.split())
    rows[kv["label"]] = kv
bare_us = float(sys.argv[2]) / 1000
rounds = sorted({int(l[1:].split("/")[0]) for l in rows if l.startswith("r") and "/" in l})
def f(r, k):
    try: return float(r[k])
    except (KeyError, ValueError, TypeError): return float("nan")
def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")
def get(sc, k):
    return [f(rows.get("r%d/%s" % (r, sc)), k) for r in rounds]
def ratio(sc, base, k):
    return med([a / b for a, b in zip(get(sc, k), get(base, k))])
print("%-9s %9s %9s %9s %8s %8s %8s %8s %8s" % ("scenario", "r/s", "p99 us", "cpu us", "r/s xE", "r/s xS",
      "cpu xE", "cpu xS", "verdicts"))
for sc in ("floor", "shaped", "hot", "distinct", "mix"):
    if not any(("r%d/%s" % (r, sc)) in rows for r in rounds): continue
    last = rows["r%d/%s" % (rounds[-1], sc)]
    print("%-9s %9.0f %9.0f %9.1f %8.2f %8.2f %8.2f %8.2f %8s" % (sc, med(get(sc, "rps")), med(get(sc, "p99_us")),
          med(get(sc, "server_cpu_us")), ratio(sc, "floor", "rps"), ratio(sc, "shaped", "rps"),
          ratio(sc, "floor", "server_cpu_us"), ratio(sc, "shaped", "server_cpu_us"),
          "%s/%s" % (last.get("allow"), last.get("deny"))))
print("(xE: ratio to the empty floor, xS: to the shaped floor; verdicts allow/deny of the last round)")
print()
hot_r, hot_c = ratio("hot", "floor", "rps"), ratio("hot", "floor", "server_cpu_us")
print("target hot token: r/s >= 1.0 x empty floor (%.2f), CPU/request <= 1.0 x (%.2f): %s" % (
      hot_r, hot_c, "PASS" if hot_r >= 1.0 and hot_c <= 1.0 else "FAIL"))
d = ratio("distinct", "floor", "rps")
print("target distinct RS256: r/s >= 0.45 x empty floor (%.2f): %s" % (d, "PASS" if d >= 0.45 else "FAIL"))
print("  bound: 1 s / (floor CPU + bare RS256 %.1f us) = %.2f x floor" % (bare_us,
      med(get("floor", "server_cpu_us")) / (med(get("floor", "server_cpu_us")) + bare_us)))
if "rss" in rows:
    r = rows["rss"]
    mib = int(r["rss_kib"]) / 1024
    print("target RSS: %.0f MiB with %s cached tokens (GOMEMLIMIT=%s GOGC=%s, start %.0f MiB, heap in use %.0f MiB) <= 120 MiB: %s" % (
          mib, r["entries"], r["gomemlimit"], r.get("gogc"), int(r["rss_start_kib"]) / 1024, int(r.get("heap_inuse") or 0) / 2**20,
          "PASS" if mib <= 120 and int(r["entries"]) >= 100000 else "FAIL"))
PY
