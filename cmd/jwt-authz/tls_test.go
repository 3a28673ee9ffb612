package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// pki makes a CA and certificates it signs, written as PEM files.
type pki struct {
	dir    string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &pki{dir: t.TempDir(), caCert: cert, caKey: key, pool: x509.NewCertPool()}
	p.pool.AddCert(cert)
	writePEM(t, filepath.Join(p.dir, "ca.pem"), "CERTIFICATE", der)
	return p
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Rename(tmp, path)
}

// issue writes name.pem and name-key.pem for cn and returns the pair.
func (p *pki) issue(t *testing.T, name, cn string, serial int64) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: nil,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	writePEM(t, filepath.Join(p.dir, name+"-key.pem"), "PRIVATE KEY", kder)
	writePEM(t, filepath.Join(p.dir, name+".pem"), "CERTIFICATE", der)
	pair, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func TestServeMTLSAndCertificateReload(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	p := newPKI(t)
	p.issue(t, "server", "server one", 2)
	client := p.issue(t, "client", "envoy", 3)
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	writeConfig(t, cfg, serveYAML(iss, "read:target")+fmt.Sprintf(
		"listen: {tls: {cert_file: %q, key_file: %q, client_ca_file: %q}}\n",
		filepath.Join(p.dir, "server.pem"), filepath.Join(p.dir, "server-key.pem"), filepath.Join(p.dir, "ca.pem")))
	s := startServe(t, cfg)
	eventually(t, "ready", func() bool { c, _ := s.get(t, "/readyz"); return c == 200 })

	dial := func(certs []tls.Certificate) (string, error) {
		var peer string
		tc := &tls.Config{RootCAs: p.pool, ServerName: "localhost", Certificates: certs,
			VerifyConnection: func(cs tls.ConnectionState) error {
				peer = cs.PeerCertificates[0].Subject.CommonName
				return nil
			}}
		conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			return "", err
		}
		defer conn.Close()
		_, err = authv3.NewAuthorizationClient(conn).Check(t.Context(), stacktest.Req{}.CheckRequest())
		return peer, err
	}
	peer, err := dial([]tls.Certificate{client})
	if err != nil || peer != "server one" {
		t.Fatalf("mTLS Check: peer %q, %v", peer, err)
	}
	if _, err := dial(nil); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	// A new certificate on disk is served without a restart.
	p.issue(t, "server", "server two", 4)
	eventually(t, "new server certificate", func() bool {
		peer, err := dial([]tls.Certificate{client})
		return err == nil && peer == "server two"
	})
}
