package httpserver

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
)

func TestRunFinishesInFlightRequestsAndExitsZero(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	entered := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		cancel() // shutdown starts while this request is in flight
		io.WriteString(w, "done")
	})}
	code := make(chan int, 1)
	go func() { code <- Run(ctx, srv, ln, slog.New(slog.DiscardHandler)) }()
	resp, err := http.Get("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	<-entered
	if string(b) != "done" {
		t.Errorf("body %q", b)
	}
	if c := <-code; c != 0 {
		t.Errorf("exit %d", c)
	}
}
