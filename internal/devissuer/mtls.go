package devissuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"time"
)

// MTLSHandler serves POST /oauth/token for the mutual-TLS listener: the same
// grant as the plain endpoint, but the token is bound to the client
// certificate of the connection (cnf["x5t#S256"], RFC 8705 §3.1). Serve it
// with a tls.Config from MTLSServerConfig, which makes the handshake require
// a certificate; the client still authenticates with its secret.
func (iss *Issuer) MTLSHandler() http.Handler { return iss.mtlsMux }

func (iss *Issuer) handleTokenMTLS(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		// Not reached behind MTLSServerConfig, whose handshake requires one.
		w.Header().Set("Cache-Control", "no-store")
		writeError(w, http.StatusUnauthorized, "invalid_client", "a client certificate is required on this endpoint")
		return
	}
	iss.serveToken(w, r, r.TLS.PeerCertificates[0])
}

// MTLSOptions configure MTLSServerConfig.
type MTLSOptions struct {
	// CertFile and KeyFile hold the server's certificate chain and key (PEM).
	// Both empty means a self-signed certificate is generated for Hosts.
	CertFile, KeyFile string
	// ClientCAFile (PEM) makes the handshake verify client certificates
	// against these CAs. Empty means any client certificate is accepted, as
	// Auth0 accepts self-signed ones: the token is bound to whichever
	// certificate the client proved it holds the key of (the TLS handshake's
	// CertificateVerify), and the client still authenticates with its
	// secret.
	ClientCAFile string
	// Hosts are the DNS names and IP addresses of a generated certificate.
	// Empty means 127.0.0.1, ::1 and localhost.
	Hosts []string
	// Now is the clock of a generated certificate's validity. Nil means
	// time.Now.
	Now func() time.Time
}

// MTLSServerConfig returns the TLS config of the mutual-TLS listener, which
// requires a client certificate, and the PEM of the server certificate (for
// clients to trust).
func MTLSServerConfig(opts MTLSOptions) (*tls.Config, []byte, error) {
	var (
		cert    tls.Certificate
		certPEM []byte
		err     error
	)
	switch {
	case opts.CertFile == "" && opts.KeyFile == "":
		now := time.Now
		if opts.Now != nil {
			now = opts.Now
		}
		cert, certPEM, err = GenerateCertificate(opts.Hosts, now(), false)
	case opts.CertFile == "" || opts.KeyFile == "":
		err = errors.New("give both a certificate and a key file, or neither")
	default:
		if certPEM, err = os.ReadFile(opts.CertFile); err == nil {
			cert, err = tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("devissuer: mtls server certificate: %w", err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		ClientAuth:   tls.RequireAnyClientCert,
	}
	if opts.ClientCAFile != "" {
		pemCAs, err := os.ReadFile(opts.ClientCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("devissuer: mtls client ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemCAs) {
			return nil, nil, fmt.Errorf("devissuer: mtls client ca %s: no PEM certificate", opts.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, certPEM, nil
}

// GenerateCertificate makes a self-signed ECDSA P-256 certificate valid for
// 30 days from an hour before now: for a server (hosts as DNS or IP SANs;
// none means 127.0.0.1, ::1 and localhost) or, with client set, for a
// client. It returns the certificate with its key and the certificate's PEM.
func GenerateCertificate(hosts []string, now time.Time, client bool) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "dev-issuer", Organization: []string{"jwt-authz development"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if client {
		tmpl.Subject.CommonName = "dev-issuer client"
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		if len(hosts) == 0 {
			hosts = []string{"127.0.0.1", "::1", "localhost"}
		}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, certPEM, nil
}
