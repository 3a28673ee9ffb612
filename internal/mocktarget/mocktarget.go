// Package mocktarget is an HTTP target after Apigee's mocktarget: fixed
// greetings, JSON and XML documents, an echo of the request (so that a demo
// can show which headers a gateway added or removed), status codes on demand
// and the caller's address.
//
// Concurrency: the handler returned by New keeps no state between requests
// and is safe for concurrent use.
package mocktarget

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// DefaultMaxBodyBytes is the largest request body /echo reads.
const DefaultMaxBodyBytes = 1 << 20

// Options configure the handler.
type Options struct {
	// MaxBodyBytes caps the body /echo reads; a larger one is answered 413.
	// Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives one debug line per request. Nil means no logs.
	Logger *slog.Logger
}

type target struct {
	maxBody int64
	log     *slog.Logger
}

// New returns the mock target's handler.
func New(opts Options) http.Handler {
	t := &target{maxBody: opts.MaxBodyBytes, log: opts.Logger}
	if t.maxBody <= 0 {
		t.maxBody = DefaultMaxBodyBytes
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", t.hello)
	mux.HandleFunc("GET /user", t.user)
	mux.HandleFunc("GET /json", t.json)
	mux.HandleFunc("GET /xml", t.xml)
	mux.HandleFunc("/echo", t.echo) // every method: a gateway test may send any
	mux.HandleFunc("GET /statuscode/{code}", t.statusCode)
	mux.HandleFunc("GET /ip", t.ip)
	mux.HandleFunc("GET /help", t.help)
	mux.HandleFunc("GET /iloveapis", t.iLoveAPIs)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.log.Debug("request", "method", r.Method, "path", r.URL.Path)
		mux.ServeHTTP(w, r)
	})
}

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeText(w, http.StatusInternalServerError, "encoding failed\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func (t *target) hello(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusOK, "Hello, Guest!")
}

func (t *target) user(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("user")
	if name == "" {
		name = "Guest"
	}
	writeText(w, http.StatusOK, "Hello, "+name+"!")
}

// person is the document of /json, fields in mocktarget's order.
type person struct {
	FirstName string `json:"firstName"`
	LastName  string `json:"lastName"`
	City      string `json:"city"`
	State     string `json:"state"`
}

// personXML is the same document for /xml, whose elements mocktarget sends in
// alphabetical order under <root>.
type personXML struct {
	XMLName   xml.Name `xml:"root"`
	City      string   `xml:"city"`
	FirstName string   `xml:"firstName"`
	LastName  string   `xml:"lastName"`
	State     string   `xml:"state"`
}

var john = person{FirstName: "John", LastName: "Doe", City: "San Jose", State: "CA"}

func (t *target) json(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, john)
}

func (t *target) xml(w http.ResponseWriter, _ *http.Request) {
	body, err := xml.Marshal(personXML{City: john.City, FirstName: john.FirstName, LastName: john.LastName, State: john.State})
	if err != nil {
		writeText(w, http.StatusInternalServerError, "encoding failed\n")
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	_, _ = io.WriteString(w, xml.Header)
	_, _ = w.Write(body)
}

// Echo is the answer of /echo.
type Echo struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	// URL is the request target as received: path and query.
	URL string `json:"url"`
	// Args are the query parameters; repeated ones are joined with ",".
	Args map[string]string `json:"args"`
	// Headers have lower-case names, host included; repeated ones are
	// joined with ", " (RFC 9110 §5.3).
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

func (t *target) echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, t.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeText(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes\n", t.maxBody))
			return
		}
		writeText(w, http.StatusBadRequest, "could not read the body\n")
		return
	}
	e := Echo{
		Method:  r.Method,
		Path:    r.URL.Path,
		URL:     r.URL.RequestURI(),
		Args:    map[string]string{},
		Headers: map[string]string{"host": r.Host},
		Body:    string(body),
	}
	for k, v := range r.URL.Query() {
		e.Args[k] = strings.Join(v, ",")
	}
	for k, v := range r.Header {
		e.Headers[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	writeJSON(w, http.StatusOK, e)
}

// statusCode answers with the code in the path. 1xx codes are informational
// in HTTP: they are sent as an interim response, then a final 200.
func (t *target) statusCode(w http.ResponseWriter, r *http.Request) {
	code, err := strconv.Atoi(r.PathValue("code"))
	if err != nil || code < 100 || code > 599 {
		writeText(w, http.StatusBadRequest, "the status code must be a number from 100 to 599\n")
		return
	}
	if code == http.StatusSwitchingProtocols {
		// net/http sends 101 as a final response, which would leave the
		// connection in a protocol it cannot speak.
		writeText(w, http.StatusBadRequest, "101 needs a protocol upgrade; pick another code\n")
		return
	}
	if code < 200 {
		w.WriteHeader(code)
		writeText(w, http.StatusOK, fmt.Sprintf("sent %d as an interim response\n", code))
		return
	}
	if code == http.StatusNoContent || code == http.StatusNotModified {
		w.WriteHeader(code) // no body allowed
		return
	}
	writeText(w, code, fmt.Sprintf("%d %s\n", code, http.StatusText(code)))
}

// ip answers with the client's address: the first X-Forwarded-For element
// when a proxy set one (as Envoy does), else the connection's peer.
func (t *target) ip(w http.ResponseWriter, r *http.Request) {
	addr := ""
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		addr = strings.TrimSpace(strings.Split(xff, ",")[0])
	}
	if addr == "" {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		addr = host
	}
	writeJSON(w, http.StatusOK, map[string]string{"ip": addr})
}

// endpoints is the /help text, one line per endpoint.
var endpoints = map[string]string{
	"GET /":                  "Hello, Guest!",
	"GET /user?user=NAME":    "Hello, NAME!",
	"GET /json":              "a JSON document about John Doe",
	"GET /xml":               "the same document as XML",
	"GET|POST /echo":         "the request as JSON: method, path, url, args, headers (lower-case), body",
	"GET /statuscode/{code}": "answers with that status code (100-599)",
	"GET /ip":                "the caller's address (first X-Forwarded-For element, else the peer)",
	"GET /help":              "this text",
	"GET /iloveapis":         "a small HTML page",
}

func (t *target) help(w http.ResponseWriter, _ *http.Request) {
	keys := make([]string, 0, len(endpoints))
	for k := range endpoints {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("mock-target, after Apigee's mocktarget. Endpoints:\n\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-24s %s\n", k, endpoints[k])
	}
	writeText(w, http.StatusOK, b.String())
}

const iLoveAPIsPage = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>I love APIs</title></head>
<body><h1>I &lt;3 APIs</h1></body></html>
`

func (t *target) iLoveAPIs(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = io.WriteString(w, iLoveAPIsPage)
}
