package devissuer

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAdminAllow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    []netip.Prefix
		wantErr bool
	}{
		{name: "empty", in: "", want: nil},
		{name: "only commas and spaces", in: " , ,", want: nil},
		{name: "compose networks", in: "172.16.0.0/12,192.168.0.0/16,10.0.0.0/8", want: []netip.Prefix{
			netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("10.0.0.0/8"),
		}},
		{name: "spaces around entries", in: " 10.0.0.0/8 , fd00::/8 ", want: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8"),
		}},
		{name: "host bits cleared", in: "10.1.2.3/8", want: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{name: "single IPv4 address", in: "192.0.2.7", want: []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32")}},
		{name: "single IPv6 address", in: "2001:db8::1", want: []netip.Prefix{netip.MustParsePrefix("2001:db8::1/128")}},
		{name: "IPv4-mapped address", in: "::ffff:192.0.2.7", want: []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32")}},
		{name: "host name", in: "dev-issuer", wantErr: true},
		{name: "bad bits", in: "10.0.0.0/33", wantErr: true},
		{name: "one bad among good", in: "10.0.0.0/8,nope", wantErr: true},
		{name: "zone", in: "fe80::1%eth0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseAdminAllow(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseAdminAllow(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("ParseAdminAllow(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestAdminAllow(t *testing.T) {
	t.Parallel()
	allow, err := ParseAdminAllow("172.16.0.0/12,fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, Options{AdminAllow: allow})
	tests := []struct {
		name       string
		remoteAddr string
		want       int
	}{
		{name: "compose network", remoteAddr: "172.18.0.5:40000", want: http.StatusOK},
		{name: "compose network, IPv4-mapped", remoteAddr: "[::ffff:172.18.0.5]:40000", want: http.StatusOK},
		{name: "allowed IPv6 network", remoteAddr: "[fd12::5]:40000", want: http.StatusOK},
		{name: "loopback stays allowed", remoteAddr: "127.0.0.1:40000", want: http.StatusOK},
		{name: "IPv6 loopback stays allowed", remoteAddr: "[::1]:40000", want: http.StatusOK},
		{name: "just outside the network", remoteAddr: "172.32.0.1:40000", want: http.StatusForbidden},
		{name: "other LAN", remoteAddr: "192.168.1.10:40000", want: http.StatusForbidden},
		{name: "garbage address", remoteAddr: "not-an-address", want: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodGet, "/admin/keys", nil)
			req.RemoteAddr = tt.remoteAddr
			req.Header.Set("X-Forwarded-For", "127.0.0.1") // never trusted
			rec := httptest.NewRecorder()
			ts.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status = %d, want %d (body %s)", rec.Code, tt.want, rec.Body)
			}
			if tt.want == http.StatusForbidden {
				var e oauthError
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error != "access_denied" {
					t.Errorf("body = %s, want access_denied", rec.Body)
				}
			}
		})
	}
	// Rotation from the allowed network works end to end.
	req := httptest.NewRequest(http.MethodPost, "/admin/rotate", nil)
	req.RemoteAddr = "172.18.0.5:40000"
	before := ts.Keys()
	rec := httptest.NewRecorder()
	ts.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("rotate from the compose network: status %d, body %s", rec.Code, rec.Body)
	}
	if after := ts.Keys(); after.Current != before.Next {
		t.Errorf("after rotation current = %q, want the previous next key %q", after.Current, before.Next)
	}
}

func TestNewRejectsInvalidAdminAllow(t *testing.T) {
	t.Parallel()
	_, err := New(Options{Issuer: "http://127.0.0.1:8081/", AdminAllow: []netip.Prefix{{}}, GenerateKey: poolKeys(t)})
	if err == nil {
		t.Fatal("New accepted a zero netip.Prefix in AdminAllow")
	}
}
