#!/usr/bin/env bash
# run-local.sh — what `make run` calls: build dev-issuer, mock-target and jwt-authz into bin/, start
# them on loopback (logs in .run/*.log; the walkthrough's DPoP keys in .run/*.key), and, when nginx is
# installed, an nginx in front of mock-target that asks jwt-authz's HTTP authorization mode
# (auth_request) about every request; wait until everything is ready, print the commands of the
# walkthrough, and stop it all on Ctrl-C (or SIGTERM).
#
# Needs only Go and bash; curl is used when present (the printed commands use it), otherwise the
# readiness checks speak HTTP over bash's /dev/tcp. nginx is optional (apt-get install nginx-light).
#
# Environment:
#   GO                          the go command (default: go)
#   RUN_LOCAL_EXIT_WHEN_READY=1 stop everything and exit 0 right after printing (for tests and CI)
#   RUN_LOCAL_READY_TIMEOUT     seconds to wait for readiness (default: 30)
#   RUN_LOCAL_NO_CURL=1         poll readiness over /dev/tcp even when curl is installed (tests that path)
#   RUN_LOCAL_NO_NGINX=1        do not start nginx even when it is installed
#   NGINX                       the nginx command (default: nginx from PATH, or /usr/sbin/nginx)
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
NGINX_ADDR=127.0.0.1:8082
CONFIG=examples/local.yaml

# nginx is optional: it is looked for on PATH and where Debian puts it (/usr/sbin is not on every
# user's PATH).
NGINX=${NGINX:-$(command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true)}
if [[ ${RUN_LOCAL_NO_NGINX:-} == 1 ]]; then
	NGINX=
fi

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

# write_nginx_conf writes $RUN_DIR/nginx/nginx.conf: nginx on $NGINX_ADDR in front of mock-target,
# asking jwt-authz's HTTP authorization mode (http_authz in the config, with
# forwarded_headers: x-original) about every request with auth_request. The claim headers of an allowed
# request are copied to the upstream request with auth_request_set + proxy_set_header; an empty value
# (claim absent, or a denied request) removes the header, so a client's own x-jwt-sub never passes.
write_nginx_conf() {
	local dir=$ROOT/$RUN_DIR/nginx temps="client_body_temp_path proxy_temp_path" m v
	mkdir -p "$dir"
	v=$("$NGINX" -V 2>&1 || true)
	# Debian's builds put temp paths under /var/lib/nginx: keep them all here, for each module built in.
	for m in fastcgi uwsgi scgi; do
		[[ $v == *"--without-http_${m}_module"* ]] || temps="$temps ${m}_temp_path"
	done
	{
		cat <<EOF
# Written by scripts/run-local.sh for make run; see the README's HTTP authorization mode.
daemon off;
master_process off;
pid $dir/nginx.pid;
error_log $dir/error.log notice;
events { worker_connections 64; }
http {
  access_log $dir/access.log;
EOF
		for m in $temps; do printf '  %s %s/%s;\n' "$m" "$dir" "${m%_path}"; done
		cat <<EOF
  server {
    listen $NGINX_ADDR;

    location / {
      auth_request /_jwt_authz;
      auth_request_set \$jwt_sub \$upstream_http_x_jwt_sub;
      auth_request_set \$jwt_scope \$upstream_http_x_jwt_scope;
      auth_request_set \$jwt_client_id \$upstream_http_x_jwt_client_id;
      auth_request_set \$jwt_permissions \$upstream_http_x_jwt_permissions;
      auth_request_set \$auth_challenge \$upstream_http_www_authenticate;
      auth_request_set \$auth_reason \$upstream_http_x_jwt_authz_reason;
      proxy_set_header x-jwt-sub \$jwt_sub;
      proxy_set_header x-jwt-scope \$jwt_scope;
      proxy_set_header x-jwt-client-id \$jwt_client_id;
      proxy_set_header x-jwt-permissions \$jwt_permissions;
      error_page 401 = @denied401;
      error_page 403 = @denied403;
      proxy_pass http://$TARGET_ADDR;
    }

    # The subrequest: jwt-authz reads the original method, URI and host from X-Original-*.
    location = /_jwt_authz {
      internal;
      proxy_pass http://$HTTP_ADDR/authz;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI \$request_uri;
      proxy_set_header X-Original-Method \$request_method;
      proxy_set_header X-Original-Host \$host;
    }

    # nginx passes a 401's WWW-Authenticate itself; a 403's challenge and the reason are relayed.
    location @denied401 {
      add_header X-Jwt-Authz-Reason \$auth_reason always;
      return 401;
    }
    location @denied403 {
      add_header WWW-Authenticate \$auth_challenge always;
      add_header X-Jwt-Authz-Reason \$auth_reason always;
      return 403;
    }
  }
}
EOF
	} >"$dir/nginx.conf"
}

ADDRS=("$ISSUER_ADDR" "$TARGET_ADDR" "$GRPC_ADDR" "$HTTP_ADDR")
[[ -z $NGINX ]] || ADDRS+=("$NGINX_ADDR")
for addr in "${ADDRS[@]}"; do
	if port_in_use "$addr"; then
		log "$addr is already in use: stop whatever listens there (an earlier make run?) and retry"
		exit 1
	fi
done

mkdir -p bin "$RUN_DIR"
# Only the three programs run here (the first build of a fresh clone compiles the dependencies: a
# minute or two).
n=0
for prog in jwt-authz dev-issuer mock-target; do
	n=$((n + 1))
	started=$SECONDS
	log "building bin/$prog ($n/3)..."
	"$GO" build -o "bin/$prog" "./cmd/$prog"
	log "built bin/$prog in $((SECONDS - started))s"
done
# DPoP keys for the walkthrough: the client's, and a thief's (kept across runs; they are only keys).
for key in dpop thief; do
	[[ -f $RUN_DIR/$key.key ]] || bin/jwt-authz keygen -type ec -out "$RUN_DIR/$key.key"
done

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
if [[ -n $NGINX ]]; then
	write_nginx_conf
	start nginx "$NGINX" -p "$ROOT/$RUN_DIR/nginx" -c "$ROOT/$RUN_DIR/nginx/nginx.conf" -e "$ROOT/$RUN_DIR/nginx/error.log"
	# Without a token nginx answers 401 once it asks jwt-authz: that is ready.
	code=000
	while ((SECONDS < DEADLINE)); do
		if ! kill -0 "$(pid_of nginx)" 2>/dev/null; then
			log "nginx exited before it was ready"
			tail -n 30 "$RUN_DIR/nginx.log" "$RUN_DIR/nginx/error.log" >&2 || true
			exit 1
		fi
		code=$(http_status "http://$NGINX_ADDR/echo")
		[[ $code == 401 ]] && break
		sleep 0.2
	done
	if [[ $code != 401 ]]; then
		log "nginx on $NGINX_ADDR answered $code without a token, want 401 (after ${READY_TIMEOUT}s)"
		tail -n 30 "$RUN_DIR/nginx/error.log" >&2 || true
		exit 1
	fi
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

# 6. A DPoP-bound token (RFC 9449, token_type DPoP), as Auth0 issues one to a client with a DPoP key:
#    the token request carries a proof signed with the client's key ($RUN_DIR/dpop.key) for POST and
#    the token endpoint; the token's cnf.jkt names that key.
DPOP_TOKEN=\$(curl -s --request POST --url ${ISSUER_URL}oauth/token --header "DPoP: \$(bin/jwt-authz dpop-proof -key $RUN_DIR/dpop.key -url ${ISSUER_URL}oauth/token)" --header 'content-type: application/json' --data '{"client_id":"demo-m2m","client_secret":"demo-m2m-secret","audience":"urn:apigee:target:api","grant_type":"client_credentials"}' | sed -E 's/.*"access_token" *: *"([^"]+)".*/\1/')

# 7. Allowed (exit 0): check signs a fresh proof for this request with the same key and sends
#    'authorization: DPoP' (cnf_method: dpop):
bin/jwt-authz check -addr $GRPC_ADDR -token "\$DPOP_TOKEN" -dpop-key $RUN_DIR/dpop.key -path /echo

# 8. The token stolen, used without its key: denied 401 (exit 1), missing_proof as a Bearer token,
#    sender_mismatch with the thief's own key:
bin/jwt-authz check -addr $GRPC_ADDR -token "\$DPOP_TOKEN" -path /echo
bin/jwt-authz check -addr $GRPC_ADDR -token "\$DPOP_TOKEN" -dpop-key $RUN_DIR/thief.key -path /echo

EOF

if [[ -n $NGINX ]]; then
	cat <<EOF
nginx  http://$NGINX_ADDR  in front of mock-target; asks jwt-authz (HTTP mode, auth_request) first. Logs: $RUN_DIR/nginx/

# 9. Through nginx: mock-target's /echo shows the claim headers it received (x-jwt-sub, x-jwt-scope,
#    x-jwt-client-id); the client's own x-jwt-sub is replaced:
curl -s -H "Authorization: Bearer \$TOKEN" -H 'x-jwt-sub: spoofed' http://$NGINX_ADDR/echo

# 10. Through nginx without a token: 401, with the challenge and the reason:
curl -si http://$NGINX_ADDR/echo

EOF
else
	cat <<EOF
(nginx is not installed. With it, make run also puts nginx in front of mock-target, asking
jwt-authz's HTTP authorization mode with auth_request. Debian/Ubuntu: sudo apt-get install nginx-light;
macOS: brew install nginx. Then run make run again.)

EOF
fi

if [[ ${RUN_LOCAL_EXIT_WHEN_READY:-} == 1 ]]; then
	log "RUN_LOCAL_EXIT_WHEN_READY=1: stopping"
	exit 0
fi
echo "Press Ctrl-C here to stop ${NAMES[*]}."

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
