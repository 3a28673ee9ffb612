package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/internal/devissuer"
)

// TestMTLSListener: -mtls-addr with no certificate files generates a server
// certificate, writes it to the file printed at start, derives the token
// endpoint from the bound address, and the listener's handshake requires a
// client certificate.
func TestMTLSListener(t *testing.T) {
	m, err := newMTLSListener("127.0.0.1:0", "", devissuer.MTLSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.ln.Close(); os.Remove(m.certFile) })
	if want := "https://" + m.ln.Addr().String() + "/oauth/token"; m.tokenEndpoint() != want {
		t.Errorf("token endpoint %q, want %q", m.tokenEndpoint(), want)
	}
	certPEM, err := os.ReadFile(m.certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(certPEM) {
		t.Fatalf("%s holds no PEM certificate", m.certFile)
	}
	go func() { // complete handshakes until the listener closes
		for {
			c, err := m.ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if c.(*tls.Conn).Handshake() == nil {
					_, _ = c.Write([]byte("k")) // tells the client it was accepted
				}
			}()
		}
	}()
	clientCert, _, err := devissuer.GenerateCertificate(nil, time.Now(), true)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(certs []tls.Certificate) error {
		c, err := tls.Dial("tcp", m.ln.Addr().String(), &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12})
		if err != nil {
			return err
		}
		defer c.Close()
		// TLS 1.3 reports a refused client certificate on the first read.
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Read(make([]byte, 1))
		return err
	}
	if err := dial([]tls.Certificate{clientCert}); err != nil {
		t.Errorf("with a client certificate: %v", err)
	}
	if err := dial(nil); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("without a client certificate: %v, want the server to require one", err)
	}
	if m := (*mtlsListener)(nil); m.tokenEndpoint() != "" {
		t.Error("no listener: want no token endpoint")
	}
}
