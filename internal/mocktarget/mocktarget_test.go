package mocktarget

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func newServer(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(New(opts)) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	header http.Header
	body   string
}

func send(t *testing.T, method, url, body string, header map[string]string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func TestFixedEndpoints(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	tests := []struct {
		name        string
		method      string
		path        string
		status      int
		contentType string
		body        string
	}{
		{name: "root", method: "GET", path: "/", status: 200, contentType: "text/plain; charset=utf-8", body: "Hello, Guest!"},
		{name: "user", method: "GET", path: "/user?user=Ada", status: 200, contentType: "text/plain; charset=utf-8", body: "Hello, Ada!"},
		{name: "user escaped", method: "GET", path: "/user?user=J%C3%BCrgen%20K", status: 200, contentType: "text/plain; charset=utf-8", body: "Hello, Jürgen K!"},
		{name: "user without name", method: "GET", path: "/user", status: 200, contentType: "text/plain; charset=utf-8", body: "Hello, Guest!"},
		{name: "json", method: "GET", path: "/json", status: 200, contentType: "application/json",
			body: `{"firstName":"John","lastName":"Doe","city":"San Jose","state":"CA"}` + "\n"},
		{name: "xml", method: "GET", path: "/xml", status: 200, contentType: "application/xml; charset=utf-8",
			body: xml.Header + `<root><city>San Jose</city><firstName>John</firstName><lastName>Doe</lastName><state>CA</state></root>`},
		{name: "iloveapis", method: "GET", path: "/iloveapis", status: 200, contentType: "text/html; charset=utf-8", body: iLoveAPIsPage},
		{name: "unknown path", method: "GET", path: "/nope", status: 404, contentType: "text/plain; charset=utf-8", body: "404 page not found\n"},
		{name: "POST to root", method: "POST", path: "/", status: 405, contentType: "text/plain; charset=utf-8", body: "Method Not Allowed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := send(t, tt.method, srv.URL+tt.path, "", nil)
			if got.status != tt.status {
				t.Errorf("status = %d, want %d", got.status, tt.status)
			}
			if ct := got.header.Get("Content-Type"); ct != tt.contentType {
				t.Errorf("Content-Type = %q, want %q", ct, tt.contentType)
			}
			if diff := cmp.Diff(tt.body, got.body); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestXMLHasTheJSONFields(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	var fromXML personXML
	var fromJSON person
	if err := xml.Unmarshal([]byte(send(t, "GET", srv.URL+"/xml", "", nil).body), &fromXML); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(send(t, "GET", srv.URL+"/json", "", nil).body), &fromJSON); err != nil {
		t.Fatal(err)
	}
	got := person{FirstName: fromXML.FirstName, LastName: fromXML.LastName, City: fromXML.City, State: fromXML.State}
	if diff := cmp.Diff(fromJSON, got); diff != "" {
		t.Errorf("xml vs json (-json +xml):\n%s", diff)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	got := send(t, "GET", srv.URL+"/help", "", nil)
	if got.status != 200 || got.header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("status %d, Content-Type %q", got.status, got.header.Get("Content-Type"))
	}
	for _, p := range []string{"/user", "/json", "/xml", "/echo", "/statuscode/{code}", "/ip", "/help", "/iloveapis"} {
		if !strings.Contains(got.body, p) {
			t.Errorf("/help does not list %s:\n%s", p, got.body)
		}
	}
}

func TestEcho(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{MaxBodyBytes: 64})
	host := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		name   string
		method string
		target string
		body   string
		header map[string]string
		want   Echo
	}{
		{
			name: "GET with args and headers", method: "GET", target: "/echo?a=1&b=two&a=3",
			header: map[string]string{"X-Jwt-Sub": "demo-m2m@clients", "X-Jwt-Scope": "read:target"},
			want: Echo{
				Method: "GET", Path: "/echo", URL: "/echo?a=1&b=two&a=3",
				Args: map[string]string{"a": "1,3", "b": "two"},
				Headers: map[string]string{
					"host": host, "accept-encoding": "gzip", "user-agent": "Go-http-client/1.1",
					"x-jwt-sub": "demo-m2m@clients", "x-jwt-scope": "read:target",
				},
			},
		},
		{
			name: "POST with a JSON body", method: "POST", target: "/echo", body: `{"hello":"world"}`,
			header: map[string]string{"Content-Type": "application/json"},
			want: Echo{
				Method: "POST", Path: "/echo", URL: "/echo", Args: map[string]string{},
				Headers: map[string]string{
					"host": host, "accept-encoding": "gzip", "user-agent": "Go-http-client/1.1",
					"content-type": "application/json", "content-length": "17",
				},
				Body: `{"hello":"world"}`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := send(t, tt.method, srv.URL+tt.target, tt.body, tt.header)
			if got.status != 200 || got.header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, Content-Type %q, body %s", got.status, got.header.Get("Content-Type"), got.body)
			}
			var e Echo
			if err := json.Unmarshal([]byte(got.body), &e); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, e); diff != "" {
				t.Errorf("echo (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("repeated header", func(t *testing.T) {
		t.Parallel()
		req := httptest.NewRequest("GET", "/echo", nil)
		req.Header.Add("X-Multi", "a")
		req.Header.Add("X-Multi", "b")
		rec := httptest.NewRecorder()
		New(Options{}).ServeHTTP(rec, req)
		var e Echo
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		if got := e.Headers["x-multi"]; got != "a, b" {
			t.Errorf("x-multi = %q, want %q", got, "a, b")
		}
	})

	t.Run("body too large", func(t *testing.T) {
		t.Parallel()
		got := send(t, "POST", srv.URL+"/echo", strings.Repeat("x", 65), nil)
		if got.status != http.StatusRequestEntityTooLarge {
			t.Errorf("status = %d, want 413", got.status)
		}
	})
}

func TestStatusCode(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	tests := []struct {
		code   string
		status int
		body   string
	}{
		{code: "200", status: 200, body: "200 OK\n"},
		{code: "201", status: 201, body: "201 Created\n"},
		{code: "204", status: 204, body: ""},
		{code: "304", status: 304, body: ""},
		{code: "401", status: 401, body: "401 Unauthorized\n"},
		{code: "418", status: 418, body: "418 I'm a teapot\n"},
		{code: "503", status: 503, body: "503 Service Unavailable\n"},
		{code: "599", status: 599, body: "599 \n"},
		{code: "103", status: 200, body: "sent 103 as an interim response\n"},
		{code: "101", status: 400, body: "101 needs a protocol upgrade; pick another code\n"},
		{code: "99", status: 400, body: "the status code must be a number from 100 to 599\n"},
		{code: "600", status: 400, body: "the status code must be a number from 100 to 599\n"},
		{code: "abc", status: 400, body: "the status code must be a number from 100 to 599\n"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			t.Parallel()
			got := send(t, "GET", srv.URL+"/statuscode/"+tt.code, "", nil)
			if got.status != tt.status {
				t.Errorf("status = %d, want %d", got.status, tt.status)
			}
			if got.body != tt.body {
				t.Errorf("body = %q, want %q", got.body, tt.body)
			}
		})
	}

	t.Run("interim response reaches the client", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		var interim []int
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
			mu.Lock()
			defer mu.Unlock()
			interim = append(interim, code)
			return nil
		}}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", srv.URL+"/statuscode/103", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		mu.Lock()
		defer mu.Unlock()
		if diff := cmp.Diff([]int{103}, interim); diff != "" {
			t.Errorf("interim responses (-want +got):\n%s", diff)
		}
	})
}

func TestIP(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	tests := []struct {
		name   string
		header map[string]string
		want   string
	}{
		{name: "peer address", want: "127.0.0.1"},
		{name: "X-Forwarded-For", header: map[string]string{"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}, want: "203.0.113.7"},
		{name: "single X-Forwarded-For", header: map[string]string{"X-Forwarded-For": " 2001:db8::7 "}, want: "2001:db8::7"},
		{name: "empty X-Forwarded-For", header: map[string]string{"X-Forwarded-For": ""}, want: "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := send(t, "GET", srv.URL+"/ip", "", tt.header)
			if got.status != 200 || got.header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, Content-Type %q", got.status, got.header.Get("Content-Type"))
			}
			var body map[string]string
			if err := json.Unmarshal([]byte(got.body), &body); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]string{"ip": tt.want}, body); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}
