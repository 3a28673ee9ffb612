package jwks

import (
	"net/http"
	"testing"
	"time"
)

func TestFreshnessIsClamped(t *testing.T) {
	t.Parallel()
	p := &KeySet{opts: Options{MinRefreshInterval: 30 * time.Second, RefreshInterval: 15 * time.Minute}}
	date := "Wed, 25 Nov 2026 12:00:00 GMT"
	for _, tc := range []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{name: "nothing", header: http.Header{}, want: 15 * time.Minute},
		{name: "max-age", header: http.Header{"Cache-Control": {"public, max-age=300"}}, want: 5 * time.Minute},
		{name: "max-age quoted, upper case", header: http.Header{"Cache-Control": {`Max-Age="300"`}}, want: 5 * time.Minute},
		{name: "max-age less age", header: http.Header{"Cache-Control": {"max-age=300"}, "Age": {"100"}}, want: 200 * time.Second},
		{name: "max-age used up", header: http.Header{"Cache-Control": {"max-age=300"}, "Age": {"400"}}, want: 30 * time.Second},
		{name: "max-age zero", header: http.Header{"Cache-Control": {"max-age=0"}}, want: 30 * time.Second},
		{name: "max-age above refresh", header: http.Header{"Cache-Control": {"max-age=86400"}}, want: 15 * time.Minute},
		{name: "no-cache", header: http.Header{"Cache-Control": {"max-age=60, no-cache"}}, want: 15 * time.Minute},
		{name: "no-store in a second header", header: http.Header{"Cache-Control": {"max-age=60", "no-store"}}, want: 15 * time.Minute},
		{name: "unparsable max-age", header: http.Header{"Cache-Control": {"max-age=soon"}}, want: 15 * time.Minute},
		{name: "expires", header: http.Header{"Date": {date}, "Expires": {"Wed, 25 Nov 2026 12:02:00 GMT"}}, want: 2 * time.Minute},
		{name: "expires in the past", header: http.Header{"Date": {date}, "Expires": {"Wed, 25 Nov 2026 11:00:00 GMT"}}, want: 30 * time.Second},
		{name: "expires without date", header: http.Header{"Expires": {"Wed, 25 Nov 2026 12:02:00 GMT"}}, want: 15 * time.Minute},
		{name: "max-age wins over expires", header: http.Header{"Cache-Control": {"max-age=60"}, "Date": {date}, "Expires": {"Wed, 25 Nov 2026 12:10:00 GMT"}}, want: time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := p.clamp(p.freshness(tc.header)); got != tc.want {
				t.Errorf("refresh in %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBackoffStaysWithinBounds(t *testing.T) {
	t.Parallel()
	p := &KeySet{opts: Options{MinRefreshInterval: 30 * time.Second, RefreshInterval: 15 * time.Minute}}
	for n := 1; n <= 100; n++ {
		d := p.backoff(n)
		if d < 30*time.Second || d > 15*time.Minute {
			t.Fatalf("backoff(%d) = %v, out of [30s, 15m]", n, d)
		}
		if n == 1 && d != 30*time.Second {
			t.Errorf("first retry in %v, want 30s", d)
		}
	}
}
