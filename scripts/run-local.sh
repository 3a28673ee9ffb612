#!/usr/bin/env bash
# run-local.sh — what `make run` calls: build dev-issuer, mock-target and jwt-authz into bin/, start
# them on loopback (logs in .run/*.log), wait until jwt-authz is ready, print the commands of the
# walkthrough, and stop all three on Ctrl-C (or SIGTERM).
#
# Needs only Go and bash; curl is used when present (the printed commands use it), otherwise the
# readiness checks speak HTTP over bash's /dev/tcp.
#
# Environment:
#   GO                          the go command (default: go)
#   RUN_LOCAL_EXIT_WHEN_READY=1 stop everything and exit 0 right after printing (for tests and CI)
#   RUN_LOCAL_READY_TIMEOUT     seconds to wait for readiness (default: 30)
#   RUN_LOCAL_NO_CURL=1         poll readiness over /dev/tcp even when curl is installed (tests that path)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
GO=${GO:-go}
RUN_DIR=.run
READY_TIMEOUT=${RUN_LOCAL_READY_TIMEOUT:-30}

ISSUER_ADDR=127.0.0.1:8081
ISSUER_URL=http://127.0.0.1:8081/
TARGET_ADDR=127.0.0.1:8080
GRPC_ADDR=127.0.0.1:9001
HTTP_ADDR=127.0.0.1:9090
CONFIG=examples/local.yaml

# The programs started here, as parallel arrays (bash 3.2, macOS's, has no associative arrays).
NAMES=()
PIDS=()

log() { printf 'run-local: %s\n' "$*" >&2; }

# stop_all sends SIGTERM to every program started here, waits up to 15 s for them to exit (each one
# shuts down gracefully on SIGTERM), then SIGKILLs what is left. Safe to call more than once.
stop_all() {
	local i pid deadline
	((${#PIDS[@]})) || return 0
	log "stopping ${NAMES[*]}"
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	deadline=$((SECONDS + 15))
	for i in "${!PIDS[@]}"; do
		pid=${PIDS[$i]}
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "${NAMES[$i]} (pid $pid) did not stop in time: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	NAMES=()
	PIDS=()
	log "stopped"
}

# pid_of NAME prints the pid of the program NAME started here.
pid_of() {
	local i
	for i in "${!NAMES[@]}"; do
		if [[ ${NAMES[$i]} == "$1" ]]; then
			printf '%s' "${PIDS[$i]}"
			return 0
		fi
	done
	return 1
}

on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	stop_all
	exit "$rc"
}
# Ctrl-C and SIGTERM are the normal way to stop the demo: a clean stop exits 0.
on_signal() { exit 0; }
trap on_exit EXIT
trap on_signal INT TERM

# http_status URL prints the HTTP status code of GET URL, or 000 when there is no answer.
http_status() {
	local url=$1
	if [[ ${RUN_LOCAL_NO_CURL:-} != 1 ]] && command -v curl >/dev/null 2>&1; then
		curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null || true
		return 0
	fi
	# Fallback: HTTP/1.0 over bash's /dev/tcp. URL is http://HOST:PORT/PATH.
	local rest=${url#http://} hostport path host port line
	hostport=${rest%%/*}
	path=/${rest#*/}
	host=${hostport%:*}
	port=${hostport##*:}
	# The braces keep the 2>/dev/null from applying to the rest of the shell.
	if ! { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null; then
		printf '000'
		return 0
	fi
	printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$hostport" >&3 || true
	line=
	read -r -t 2 line <&3 || true
	exec 3<&- 3>&-
	# "HTTP/1.1 200 OK"
	line=${line#HTTP/* }
	printf '%s' "${line:0:3}" | tr -cd '0-9' | grep . || printf '000'
}

# port_in_use HOST:PORT succeeds when something accepts connections there.
port_in_use() {
	local host=${1%:*} port=${1##*:}
	(exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

tail_log() {
	local name=$1
	log "last lines of $RUN_DIR/$name.log:"
	tail -n 30 "$RUN_DIR/$name.log" >&2 || true
}

# wait_for NAME URL waits until GET URL answers 200, while the program NAME is still running, until the
# shared deadline. On failure it prints NAME's log tail and returns 1.
wait_for() {
	local name=$1 url=$2 code=000
	while ((SECONDS < DEADLINE)); do
		if ! kill -0 "$(pid_of "$name")" 2>/dev/null; then
			log "$name exited before it was ready"
			tail_log "$name"
			return 1
		fi
		code=$(http_status "$url")
		[[ $code == 200 ]] && return 0
		sleep 0.2
	done
	log "$name not ready after ${READY_TIMEOUT}s: GET $url answered $code"
	tail_log "$name"
	return 1
}

start() {
	local name=$1
	shift
	"$@" >"$RUN_DIR/$name.log" 2>&1 &
	NAMES+=("$name")
	PIDS+=($!)
	log "started $name (pid $!), log in $RUN_DIR/$name.log"
}

for addr in "$ISSUER_ADDR" "$TARGET_ADDR" "$GRPC_ADDR" "$HTTP_ADDR"; do
	if port_in_use "$addr"; then
		log "$addr is already in use: stop whatever listens there (an earlier make run?) and retry"
		exit 1
	fi
done

log "building into bin/"
mkdir -p bin "$RUN_DIR"
"$GO" build -o bin/ ./cmd/...

DEADLINE=$((SECONDS + READY_TIMEOUT))
start dev-issuer bin/dev-issuer -addr "$ISSUER_ADDR" -issuer "$ISSUER_URL" -log-format text
start mock-target bin/mock-target -addr "$TARGET_ADDR"
# jwt-authz finds its keys by discovery at dev-issuer: start it once dev-issuer answers, so that the
# first fetch succeeds rather than waiting for a retry.
wait_for dev-issuer "${ISSUER_URL}.well-known/openid-configuration" || exit 1
wait_for mock-target "http://$TARGET_ADDR/" || exit 1
start jwt-authz bin/jwt-authz serve -config "$CONFIG" -log-format text
if ! wait_for jwt-authz "http://$HTTP_ADDR/readyz"; then
	exit 1
fi

cat <<EOF

jwt-authz is ready (in $ROOT).
  dev-issuer   http://$ISSUER_ADDR   Auth0 stand-in (demo clients: demo-m2m, demo-admin, demo-readonly)
  mock-target  http://$TARGET_ADDR   Apigee-style target (/echo shows the headers it receives)
  jwt-authz    $GRPC_ADDR       ext_authz gRPC; http://$HTTP_ADDR/metrics /readyz /debug/keys
  logs         $RUN_DIR/dev-issuer.log $RUN_DIR/mock-target.log $RUN_DIR/jwt-authz.log

In another terminal, from $ROOT:

# 1. Get a token, exactly as Auth0's client-credentials tutorial does:
TOKEN=\$(curl -s --request POST --url ${ISSUER_URL}oauth/token --header 'content-type: application/json' --data '{"client_id":"demo-m2m","client_secret":"demo-m2m-secret","audience":"urn:apigee:target:api","grant_type":"client_credentials"}' | sed -E 's/.*"access_token" *: *"([^"]+)".*/\1/')

# 2. Allowed (exit 0): the x-jwt-* headers jwt-authz would add upstream are printed:
bin/jwt-authz check -addr $GRPC_ADDR -token "\$TOKEN" -path /echo

# 3. Denied 403 insufficient_scope (exit 1): /admin needs admin:write, demo-m2m lacks it:
bin/jwt-authz check -addr $GRPC_ADDR -token "\$TOKEN" -path /admin

# 4. Denied 401 (exit 1): no token:
bin/jwt-authz check -addr $GRPC_ADDR -path /echo

# 5. Rotate dev-issuer's signing key, get a new token and check again: still allowed.
curl -X POST ${ISSUER_URL}admin/rotate

EOF

if [[ ${RUN_LOCAL_EXIT_WHEN_READY:-} == 1 ]]; then
	log "RUN_LOCAL_EXIT_WHEN_READY=1: stopping"
	exit 0
fi
echo "Press Ctrl-C here to stop all three."

# Run until Ctrl-C (the trap stops everything), or until one of the programs exits on its own: then
# show its log and stop the others. (`wait -n` would do, but macOS's bash 3.2 lacks it.)
while :; do
	for i in "${!PIDS[@]}"; do
		if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
			log "${NAMES[$i]} exited on its own"
			tail_log "${NAMES[$i]}"
			exit 1
		fi
	done
	sleep 1
done
