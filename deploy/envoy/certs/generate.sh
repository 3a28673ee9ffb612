#!/bin/sh
# Makes the demo TLS files of Envoy's client-certificate listener (deploy/envoy/envoy.yaml, port 10443):
#   ca.pem                        a throwaway CA (its key is deleted at the end: nothing else is ever signed by it)
#   server.pem, server-key.pem    Envoy's server certificate, signed by that CA, for localhost, 127.0.0.1, ::1
#                                 and envoy (the compose service name)
# Envoy sends ca.pem's name in its certificate request and accepts any client certificate
# (trust_chain_verification: ACCEPT_UNTRUSTED): the token's cnf["x5t#S256"] binding, checked by
# jwt-authz, is what proves possession. See docs/dpop.md. DEMO ONLY: the server key is public.
#
# Usage: deploy/envoy/certs/generate.sh   (needs openssl; rewrites the three files)
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
days=3650
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
  -subj "/CN=jwt-authz demo CA" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$tmp/ca-key.pem" -out ca.pem 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=envoy demo" -keyout "$tmp/server-key.pem" -out "$tmp/server.csr" 2>/dev/null
printf '%s\n' "subjectAltName=DNS:localhost,DNS:envoy,IP:127.0.0.1,IP:::1" \
  "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" > "$tmp/ext"
openssl x509 -req -in "$tmp/server.csr" -CA ca.pem -CAkey "$tmp/ca-key.pem" -CAserial "$tmp/ca.srl" -CAcreateserial \
  -days "$days" -extfile "$tmp/ext" -out server.pem 2>/dev/null
# PKCS#8, readable by Envoy's user in the container (the file is public anyway).
openssl pkey -in "$tmp/server-key.pem" -out server-key.pem
chmod 644 ca.pem server.pem server-key.pem
echo "wrote $(pwd)/ca.pem, server.pem, server-key.pem"
