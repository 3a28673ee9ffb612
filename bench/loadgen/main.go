// Command loadgen is the light gRPC load generator of bench/loadtest.sh: it
// sends Envoy-like CheckRequests (about ten headers and a bearer token from
// a file) over N connections at a fixed concurrency, or at a fixed rate,
// and prints requests/s, p50/p99 latency, the allow/deny counts of the
// answers, and — given -server-pid — the server's CPU time per request
// read from /proc/<pid>/stat. It costs a few µs of client CPU per call, far
// less than ghz, so one client core can saturate one server core.
//
// Output is one line of key=value pairs, for the script to parse.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	addr        string
	conns       int
	concurrency int
	rate        float64
	duration    time.Duration
	warmup      time.Duration
	tokens      string
	pid         int
	label       string
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:9001", "ext_authz gRPC address")
	fs.IntVar(&o.conns, "conns", 4, "gRPC connections")
	fs.IntVar(&o.concurrency, "c", 32, "requests in flight")
	fs.Float64Var(&o.rate, "rate", 0, "requests per second in total; 0 sends as fast as the server answers")
	fs.DurationVar(&o.duration, "d", 5*time.Second, "measured duration")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured duration before it")
	fs.StringVar(&o.tokens, "tokens", "", "file of tokens, one a line, used round-robin; an empty line sends no token")
	fs.IntVar(&o.pid, "server-pid", 0, "server process whose CPU time per request to report")
	fs.StringVar(&o.label, "label", "", "label printed first")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.conns < 1 || o.concurrency < 1 {
		fmt.Fprintln(stderr, "loadgen: -conns and -c must be at least 1")
		return 2
	}
	reqs, err := requests(o.tokens)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	res, err := load(o, reqs)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, res)
	return 0
}

// requests builds one CheckRequest per token, as Envoy would send it.
func requests(path string) ([]*authv3.CheckRequest, error) {
	toks := []string{""}
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		toks = toks[:0]
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			toks = append(toks, strings.TrimSpace(sc.Text()))
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
		if len(toks) == 0 {
			return nil, fmt.Errorf("%s: no tokens", path)
		}
	}
	out := make([]*authv3.CheckRequest, len(toks))
	for i, t := range toks {
		h := map[string]string{
			":authority":                     "api.example.com",
			":method":                        "GET",
			":path":                          "/v1/orders/12345?expand=items",
			":scheme":                        "https",
			"user-agent":                     "example-client/2.3.1 (linux; amd64)",
			"accept":                         "application/json",
			"accept-encoding":                "gzip, deflate, br",
			"x-request-id":                   "5f0c6c5e-1b7a-4d9e-9a43-3f1c2b7d8e90",
			"x-forwarded-for":                "203.0.113.17",
			"x-forwarded-proto":              "https",
			"x-envoy-expected-rq-timeout-ms": "15000",
		}
		if t != "" {
			h["authorization"] = "Bearer " + t
		}
		out[i] = &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Id: "1", Method: "GET", Path: h[":path"], Host: h[":authority"], Scheme: "https",
				Protocol: "HTTP/1.1", Headers: h,
			}},
		}}
	}
	return out, nil
}

type result struct {
	label                string
	n, allow, deny, errs int64
	elapsed              time.Duration
	lat                  []time.Duration
	cpu                  time.Duration // server CPU during the measured window; -1 unknown
}

func (r result) String() string {
	slices.Sort(r.lat)
	q := func(p float64) float64 {
		if len(r.lat) == 0 {
			return 0
		}
		return float64(r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))].Microseconds())
	}
	rps := float64(r.n) / r.elapsed.Seconds()
	cpu := "NA"
	if r.cpu >= 0 && r.n > 0 {
		cpu = strconv.FormatFloat(float64(r.cpu.Microseconds())/float64(r.n), 'f', 1, 64)
	}
	return fmt.Sprintf("label=%s rps=%.0f p50_us=%.0f p99_us=%.0f server_cpu_us=%s allow=%d deny=%d errors=%d n=%d",
		r.label, rps, q(0.50), q(0.99), cpu, r.allow, r.deny, r.errs, r.n)
}

func load(o options, reqs []*authv3.CheckRequest) (result, error) {
	clients := make([]authv3.AuthorizationClient, o.conns)
	for i := range clients {
		// Each NewClient is its own HTTP/2 connection.
		cc, err := grpc.NewClient(o.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return result{}, err
		}
		defer cc.Close()
		clients[i] = authv3.NewAuthorizationClient(cc)
	}
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		next      atomic.Uint64
		wg        sync.WaitGroup
		mu        sync.Mutex
		res       = result{label: o.label, cpu: -1}
	)
	var interval time.Duration
	if o.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(o.concurrency) / o.rate)
	}
	for w := range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := clients[w%len(clients)]
			lat := make([]time.Duration, 0, 1<<16)
			var n, allow, deny, errs int64
			tick := time.Now()
			for !stop.Load() {
				if interval > 0 {
					tick = tick.Add(interval)
					if d := time.Until(tick); d > 0 {
						time.Sleep(d)
					}
				}
				req := reqs[next.Add(1)%uint64(len(reqs))]
				start := time.Now()
				resp, err := c.Check(context.Background(), req)
				took := time.Since(start)
				if !measuring.Load() {
					continue
				}
				n++
				lat = append(lat, took)
				switch {
				case err != nil:
					errs++
				case resp.GetStatus().GetCode() == 0:
					allow++
				default:
					deny++
				}
			}
			mu.Lock()
			res.n += n
			res.allow += allow
			res.deny += deny
			res.errs += errs
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		}()
	}
	time.Sleep(o.warmup)
	cpu0, cpuErr := cpuTime(o.pid)
	t0 := time.Now()
	measuring.Store(true)
	time.Sleep(o.duration)
	measuring.Store(false)
	res.elapsed = time.Since(t0)
	cpu1, cpuErr2 := cpuTime(o.pid)
	stop.Store(true)
	wg.Wait()
	if o.pid > 0 && cpuErr == nil && cpuErr2 == nil {
		res.cpu = cpu1 - cpu0
	}
	return res, nil
}

// cpuTime is utime+stime of pid from /proc/<pid>/stat (fields 14 and 15,
// in clock ticks of 1/100 s: USER_HZ is 100 on Linux).
func cpuTime(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("no pid")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: split after its ")".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc stat")
	}
	return time.Duration(u+st) * 10 * time.Millisecond, nil
}
