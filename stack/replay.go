package stack

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/jwtauthz/jwt-authz/authz"
	configv1 "github.com/jwtauthz/jwt-authz/proto/jwtauthz/config/v1"
	"github.com/jwtauthz/jwt-authz/replay"
)

// replayStore is a provider's DPoP replay store and the settings it was
// built from: a reload that keeps them keeps the store, and with it the
// proofs already seen.
type replayStore struct {
	settings *configv1.DPoP // replay_store and replay_cache_entries only
	store    authz.ReplayStore
	close    func() error
}

func replaySettings(pc *configv1.Provider) *configv1.DPoP {
	d := pc.GetDpop()
	out := &configv1.DPoP{ReplayStore: d.GetReplayStore()}
	if d != nil {
		out.ReplayCacheEntries = d.ReplayCacheEntries
	}
	return out
}

// replayFor returns g's replay store for pc when its settings are the same,
// else a new one.
func (g *generation) replayFor(pc *configv1.Provider, now func() time.Time, reg prometheus.Registerer) (*replayStore, error) {
	want := replaySettings(pc)
	if g != nil {
		if old := g.replays[pc.GetName()]; old != nil && proto.Equal(old.settings, want) {
			return old, nil
		}
	}
	rs := &replayStore{settings: want, close: func() error { return nil }}
	if r := want.GetReplayStore().GetRedis(); r != nil {
		s, err := replay.NewRedis(replay.RedisOptions{
			Address:    r.GetAddress(),
			Username:   r.GetUsername(),
			Password:   r.GetPassword(),
			DB:         int(r.GetDb()),
			TLS:        r.GetTls(),
			KeyPrefix:  r.GetKeyPrefix(),
			Timeout:    r.GetTimeout().AsDuration(),
			Now:        now,
			Registerer: reg,
		})
		if err != nil {
			return nil, err
		}
		rs.store, rs.close = s, s.Close
		return rs, nil
	}
	m, err := replay.NewMemory(replay.MemoryOptions{
		MaxEntries: int(want.GetReplayCacheEntries()),
		Now:        now,
		Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	rs.store = m
	return rs, nil
}

// closeReplays closes the replay stores of old that g does not use; g nil
// closes them all.
func (g *generation) closeReplays(old *generation) {
	if old == nil {
		return
	}
	for name, rs := range old.replays {
		if g != nil && g.replays[name] == rs {
			continue
		}
		_ = rs.close()
	}
}
