package jwks_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/jwks"
)

// TestOneSource: over every combination of the four sources, Options are
// valid exactly when one is set, the refusal is ErrSourceCount with no
// field (the config reports it at the jwks object), and New refuses what
// Validate refuses.
func TestOneSource(t *testing.T) {
	t.Parallel()
	for mask := range 16 {
		o := jwks.Options{Name: "p", Issuer: "https://idp.example/"}
		n := 0
		if mask&1 != 0 {
			o.URI, n = "https://idp.example/jwks.json", n+1
		}
		if mask&2 != 0 {
			o.Discovery, n = true, n+1
		}
		if mask&4 != 0 {
			o.File, n = "/etc/keys.json", n+1
		}
		if mask&8 != 0 {
			o.Inline, n = `{"keys":[]}`, n+1
		}
		err := o.Validate()
		if (err == nil) != (n == 1) {
			t.Errorf("%d sources: Validate() = %v", n, err)
		}
		if n != 1 {
			var oe *jwks.OptionError
			if !errors.Is(err, jwks.ErrSourceCount) || !errors.As(err, &oe) || oe.Field != "" {
				t.Errorf("%d sources: %v, want ErrSourceCount without a field", n, err)
			}
		}
		if _, nerr := jwks.New(o); (nerr == nil) != (err == nil) {
			t.Errorf("%d sources: New %v, Validate %v", n, nerr, err)
		}
	}
}

// TestOptionErrors: each problem names the field the config file uses, and
// the defaults take part in the interval check.
func TestOptionErrors(t *testing.T) {
	t.Parallel()
	uri := "https://idp.example/jwks.json"
	for _, tc := range []struct {
		name  string
		o     jwks.Options
		field string
		msg   string
	}{
		{"not a URL", jwks.Options{URI: "ftp://u:secret@idp.example/k"}, "uri", `must be an http(s) URL, not "ftp://REDACTED@idp.example/k"`},
		{"plain http", jwks.Options{URI: "http://idp.example/k"}, "uri", `"http://idp.example/k": plain http:// is refused`},
		{"discovery without a URL issuer", jwks.Options{Discovery: true, Issuer: "tenant"}, "discovery", "needs an issuer that is an http(s) URL"},
		{"discovery over http", jwks.Options{Discovery: true, Issuer: "http://idp.example/"}, "discovery", `issuer "http://idp.example/": plain http://`},
		{"negative refresh", jwks.Options{URI: uri, RefreshInterval: -time.Second}, "refresh_interval", "must be positive, not -1s"},
		{"negative min refresh", jwks.Options{URI: uri, MinRefreshInterval: -time.Second}, "min_refresh_interval", "must be positive, not -1s"},
		{"negative timeout", jwks.Options{URI: uri, FetchTimeout: -time.Second}, "fetch_timeout", "must be positive, not -1s"},
		{"min above the default refresh", jwks.Options{URI: uri, MinRefreshInterval: jwks.DefaultRefreshInterval + time.Second}, "min_refresh_interval", "must not exceed refresh_interval"},
		{"min above refresh", jwks.Options{URI: uri, MinRefreshInterval: time.Hour, RefreshInterval: time.Minute}, "min_refresh_interval", "must not exceed refresh_interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var oe *jwks.OptionError
			if err := tc.o.Validate(); !errors.As(err, &oe) || oe.Field != tc.field || !strings.Contains(oe.Err.Error(), tc.msg) {
				t.Errorf("Validate() = %v; want field %q with %q", err, tc.field, tc.msg)
			}
		})
	}
	if err := (jwks.Options{URI: "http://127.0.0.1:8080/jwks.json"}).Validate(); err != nil {
		t.Errorf("loopback http: %v", err)
	}
	if err := (jwks.Options{URI: "http://idp.example/k", AllowInsecureHTTP: true}).Validate(); err != nil {
		t.Errorf("http allowed: %v", err)
	}
}
