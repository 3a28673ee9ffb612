package main

// The released image holds jwt-authz and nothing else: no /etc/ssl/certs. Importing the fallback
// roots embeds the Mozilla root set (via golang.org/x/crypto/x509roots/fallback), which crypto/x509
// uses only when the system has no roots of its own, so that HTTPS JWKS and discovery URIs verify in
// that image while a host's or a mounted CA bundle still wins wherever one exists.
import _ "golang.org/x/crypto/x509roots/fallback"
