package stack

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"

	"github.com/jwtauthz/jwt-authz/jwks"
)

// ProviderState is one provider's line in /readyz.
type ProviderState struct {
	Ready bool   `json:"ready"`
	Error string `json:"error,omitempty"`
}

// Ready reports whether every key set of the config in force has usable
// keys, and names those that do not.
func (s *Stack) Ready() (bool, []string) {
	var notReady []string
	for _, ks := range s.KeySets() {
		if !ks.Ready() {
			notReady = append(notReady, ks.Name())
		}
	}
	return len(notReady) == 0, notReady
}

// WaitReady blocks until every key set of the config in force has usable
// keys, or ctx ends.
func (s *Stack) WaitReady(ctx context.Context) error {
	for _, ks := range s.KeySets() {
		if err := ks.WaitReady(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Readiness reports whether the instance is in service (gRPC health
// SERVING, /readyz 200) and each provider's state. It gates only the first
// start: once every provider of the first config had keys, the instance
// stays in service.
func (s *Stack) Readiness() (bool, map[string]ProviderState) {
	sets := s.KeySets()
	states := make(map[string]ProviderState, len(sets))
	all := true
	for _, ks := range sets {
		st := ks.Status()
		states[st.Name] = ProviderState{Ready: st.Ready, Error: st.LastError}
		all = all && st.Ready
	}
	if all && s.started.CompareAndSwap(false, true) {
		s.log.Info("every provider has keys: in service")
	}
	return s.started.Load(), states
}

// ReadyHandler serves /readyz: 200 once in service (status "ok", or
// "degraded" naming the providers without keys), 503 "starting" before.
func (s *Stack) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		ready, states := s.Readiness()
		type notReady struct {
			Provider string `json:"provider"`
			Error    string `json:"error,omitempty"`
		}
		bad := []notReady{}
		for _, name := range slices.Sorted(maps.Keys(states)) {
			if st := states[name]; !st.Ready {
				bad = append(bad, notReady{Provider: name, Error: st.Error})
			}
		}
		body := map[string]any{"ready": ready, "providers": states}
		status := "ok"
		switch {
		case !ready:
			status = "starting"
			body["not_ready"] = bad
		case len(bad) > 0:
			status = "degraded"
			body["not_ready"] = bad
		}
		body["status"] = status
		w.Header().Set("Content-Type", "application/json")
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(body)
	})
}

// KeysHandler serves /debug/keys: every key set's public state.
func (s *Stack) KeysHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		sets := s.KeySets()
		out := make([]jwks.Status, 0, len(sets))
		for _, ks := range sets {
			out = append(out, ks.Status())
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{"providers": out})
	})
}
