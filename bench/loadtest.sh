#!/usr/bin/env bash
# Load benchmark of jwt-authz against the floor (cmd/floor, an ext_authz
# server that answers OK without work), both on loopback, the server pinned
# to CPU 0 and the load on CPU 1 (taskset). See docs/performance.md.
#
# Scenarios: one hot token; DISTINCT distinct valid tokens; 90% valid /
# 10% invalid. Driven by cmd/loadgen (light enough for one core to saturate
# the server) and, when bin/ghz is installed, by ghz through server
# reflection for the hot token. Then RSS with RSS_TOKENS cached tokens.
#
# Env: DUR (per run, default 5s), WARMUP (1s), CONC (32), CONNS (4),
# DISTINCT (10000), RSS_TOKENS (100000), OUT (.run/loadtest).
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-4s}
WARMUP=${WARMUP:-500ms}
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
go build -o bin/floor ./cmd/floor
go build -o bin/loadgen ./cmd/loadgen
go build -o bin/mint ./bench/mint

log "== mint tokens"
bin/mint -dir "$OUT" -distinct "$DISTINCT" -rss "$RSS_TOKENS"

log "== bare RS256 verification (go test -bench BareRS256, pinned to CPU $SRV_CPU)"
BARE_NS=$(taskset -c $SRV_CPU go test -run '^$' -bench '^BenchmarkBareRS256$' -benchtime 3000x -cpu 1 ./authz/ |
  awk '/^BenchmarkBareRS256/ {print $3}')
log "bare RS256: ${BARE_NS} ns/op"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# listen_addrs PID: the TCP ports PID listens on, one a line.
listen_addrs() { ss -ltnpH 2>/dev/null | awk -v p="pid=$1," 'index($0, p) {print $4}'; }

SRV_PID=
SRV_ADDR=
start_floor() {
  taskset -c $SRV_CPU bin/floor -addr 127.0.0.1:0 >"$OUT/floor.addr" &
  SRV_PID=$!; PIDS+=("$SRV_PID")
  for _ in $(seq 100); do [ -s "$OUT/floor.addr" ] && break; sleep 0.05; done
  SRV_ADDR=$(head -1 "$OUT/floor.addr")
}
start_authz() {
  taskset -c $SRV_CPU bin/jwt-authz serve -config "$OUT/${1:-config.yaml}" \
    -grpc-addr 127.0.0.1:0 -http-addr 127.0.0.1:0 -log-level warn 2>"$OUT/jwt-authz.log" &
  SRV_PID=$!; PIDS+=("$SRV_PID")
  SRV_ADDR=
  for _ in $(seq 200); do
    for a in $(listen_addrs "$SRV_PID"); do
      # The HTTP listener answers /metrics; the other one is gRPC.
      if curl -fsS -o /dev/null "http://$a/metrics" 2>/dev/null; then HTTP_ADDR=$a; else SRV_ADDR=$a; fi
    done
    [ -n "$SRV_ADDR" ] && [ -n "${HTTP_ADDR:-}" ] && break
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

# ghz_run LABEL TOKEN: ghz on CPU 1, hot token, through server reflection.
ghz_run() {
  local data
  data=$(printf '{"attributes":{"request":{"http":{"id":"1","method":"GET","path":"/v1/orders/12345?expand=items","host":"api.example.com","scheme":"https","protocol":"HTTP/1.1","headers":{":authority":"api.example.com",":method":"GET",":path":"/v1/orders/12345?expand=items",":scheme":"https","user-agent":"example-client/2.3.1 (linux; amd64)","accept":"application/json","accept-encoding":"gzip, deflate, br","x-request-id":"5f0c6c5e-1b7a-4d9e-9a43-3f1c2b7d8e90","x-forwarded-for":"203.0.113.17","x-forwarded-proto":"https","x-envoy-expected-rq-timeout-ms":"15000","authorization":"Bearer %s"}}}}}' "$2")
  taskset -c $LOAD_CPU bin/ghz --insecure --call envoy.service.auth.v3.Authorization/Check -d "$data" \
    -c "$CONC" --connections "$CONNS" -z "$DUR" --format json "$SRV_ADDR" >"$OUT/ghz-$1.json" 2>/dev/null || true
  python3 - "$1" "$OUT/ghz-$1.json" <<'PY' | tee -a "$OUT/results.txt"
import json, sys
r = json.load(open(sys.argv[2]))
lat = {d["percentage"]: d["latency"] / 1000 for d in r.get("latencyDistribution") or []}
print("label=%s rps=%.0f p50_us=%.0f p99_us=%.0f status=%s" % (sys.argv[1], r["rps"], lat.get(50, 0), lat.get(99, 0),
      ",".join("%s:%d" % kv for kv in (r.get("statusCodeDistribution") or {}).items())))
PY
}

: >"$OUT/results.txt"
HOT=$(head -1 "$OUT/hot.txt")
for srv in floor jwt-authz; do
  log "== $srv"
  if [ $srv = floor ]; then start_floor; else start_authz; fi
  run "$srv/hot" "$OUT/hot.txt"
  run "$srv/distinct" "$OUT/distinct.txt"
  run "$srv/mix" "$OUT/mix.txt"
  if [ -x bin/ghz ]; then ghz_run "$srv-ghz" "$HOT"; fi
  stop_server
done
# distinct above mostly hits the cache after its first pass over the
# tokens; the miss scenario turns the cache off so every Check verifies.
log "== jwt-authz, token cache off"
start_authz config-nocache.yaml
run "jwt-authz/miss" "$OUT/distinct.txt"
stop_server

for MEMLIMIT in "" "${RSS_MEMLIMIT:-120MiB}"; do
log "== RSS with $RSS_TOKENS cached tokens, GOMEMLIMIT=${MEMLIMIT:-unset}"
if [ -n "$MEMLIMIT" ]; then export GOMEMLIMIT=$MEMLIMIT; else unset GOMEMLIMIT; fi
start_authz
unset GOMEMLIMIT
RSS0=$(awk '/VmRSS/ {print $2}' /proc/$SRV_PID/status)
# One pass over rss.txt: at ~10k EdDSA verifications/s a pass takes ~10 s;
# -d bounds it, and the cache gauge says how many entries were reached.
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
echo "label=rss${MEMLIMIT:+-memlimit} gomemlimit=${MEMLIMIT:-unset} entries=$ENTRIES rss_start_kib=$RSS0 rss_kib=$RSS1" | tee -a "$OUT/results.txt"
stop_server
done

log "== summary (jwt-authz / floor, same run)"
python3 - "$OUT/results.txt" "$BARE_NS" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.split())
    rows[kv["label"]] = kv
bare_us = float(sys.argv[2]) / 1000
def f(r, k):
    try: return float(r[k])
    except (KeyError, ValueError): return float("nan")
print("%-10s %10s %10s %9s %9s %9s %9s %8s %8s %8s" % ("scenario", "floor r/s", "authz r/s", "ratio",
      "p50 f/a", "p99 floor", "p99 authz", "p99 x", "cpu f", "cpu a"))
for sc in ("hot", "distinct", "mix", "ghz", "miss"):
    fl = rows.get("floor/" + sc) or rows.get("floor-" + sc) or rows.get("floor/distinct")
    az = rows.get("jwt-authz/" + sc) or rows.get("jwt-authz-" + sc)
    if not fl or not az: continue
    print("%-10s %10.0f %10.0f %9.2f %4.0f/%-4.0f %9.0f %9.0f %8.2f %8s %8s" % (sc, f(fl, "rps"), f(az, "rps"),
          f(az, "rps") / f(fl, "rps"), f(fl, "p50_us"), f(az, "p50_us"), f(fl, "p99_us"), f(az, "p99_us"),
          f(az, "p99_us") / f(fl, "p99_us"), fl.get("server_cpu_us", "-"), az.get("server_cpu_us", "-")))
fl, az = rows["floor/hot"], rows["jwt-authz/hot"]
print()
hot_ok = f(az, "rps") >= 0.85 * f(fl, "rps") and f(az, "p99_us") <= 1.3 * f(fl, "p99_us")
print("target hot: rps >= 0.85 x floor, p99 <= 1.3 x floor: %s" % ("PASS" if hot_ok else "FAIL"))
ceiling = 1e6 / (f(fl, "server_cpu_us") + bare_us)
d = f(rows["jwt-authz/miss"], "rps")
print("target distinct (cache off): rps %.0f >= 0.8 x %.0f (1 s / (floor %.1f us + bare RS256 %.1f us)): %s" % (
      d, ceiling, f(fl, "server_cpu_us"), bare_us, "PASS" if d >= 0.8 * ceiling else "FAIL"))
cpu_ceiling = f(fl, "server_cpu_us") + bare_us
dc = f(rows["jwt-authz/miss"], "server_cpu_us")
print("               cpu/req %.1f us vs floor+bare %.1f us: ratio %.2f" % (dc, cpu_ceiling, dc / cpu_ceiling))
for label in ("rss", "rss-memlimit"):
    r = rows[label]
    mib = int(r["rss_kib"]) / 1024
    print("target rss (GOMEMLIMIT=%s): %.0f MiB with %s cached tokens (start %.0f MiB) <= 150 MiB: %s" % (
          r["gomemlimit"], mib, r["entries"], int(r["rss_start_kib"]) / 1024,
          "PASS" if mib <= 150 and int(r["entries"]) >= 100000 else "FAIL"))
mx = rows["jwt-authz/mix"]
print("verdicts: hot allow=%s deny=%s; distinct allow=%s deny=%s; mix allow=%s deny=%s (10%% invalid expected)" % (
      rows["jwt-authz/hot"]["allow"], rows["jwt-authz/hot"]["deny"], rows["jwt-authz/distinct"]["allow"],
      rows["jwt-authz/distinct"]["deny"], mx["allow"], mx["deny"]))
PY
