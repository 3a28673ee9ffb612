package main

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestFallbackRoots runs this test binary again with no system CA bundle reachable, as in the
// release image, and checks that jwt-authz still has the embedded roots (ISRG Root X1 among them),
// so an HTTPS JWKS URI can be verified there.
func TestFallbackRoots(t *testing.T) {
	if os.Getenv("JWT_AUTHZ_ROOTS_CHILD") == "1" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		// Subjects is deprecated because it leaves out system roots on some platforms; the
		// fallback pool is an ordinary pool, so here it lists them all.
		//lint:ignore SA1019 the fallback pool is an ordinary pool (see above)
		for _, raw := range pool.Subjects() {
			var rdn pkix.RDNSequence
			if _, err := asn1.Unmarshal(raw, &rdn); err != nil {
				t.Fatal(err)
			}
			var n pkix.Name
			n.FillFromRDNSequence(&rdn)
			names = append(names, n.CommonName)
		}
		if len(names) < 100 || !strings.Contains(strings.Join(names, "\n"), "ISRG Root X1") {
			t.Fatalf("%d roots without a system bundle, want the embedded set with ISRG Root X1", len(names))
		}
		return
	}
	t.Parallel()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestFallbackRoots$", "-test.count=1")
	cmd.Env = append(os.Environ(), "JWT_AUTHZ_ROOTS_CHILD=1",
		"SSL_CERT_FILE=/nonexistent/ca.pem", "SSL_CERT_DIR=/nonexistent")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
