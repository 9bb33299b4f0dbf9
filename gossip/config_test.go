package gossip

import (
	"errors"
	"log/slog"
	"shardlog/ids"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr []string // substrings that must all appear
	}{
		{name: "defaults are valid", mutate: func(*Config) {}},
		{name: "zero node ID", mutate: func(c *Config) { c.NodeID = 0 }, wantErr: []string{"node ID"}},
		{name: "bad port", mutate: func(c *Config) { c.BindPort = 70000 }, wantErr: []string{"bind port"}},
		{name: "bad profile", mutate: func(c *Config) { c.Profile = "wan" }, wantErr: []string{"profile"}},
		{name: "huge meta", mutate: func(c *Config) { c.Meta.Zone = strings.Repeat("z", 600) }, wantErr: []string{"too large"}},
		{
			name:    "all problems at once",
			mutate:  func(c *Config) { c.NodeID = 0; c.AdvertisePort = -1; c.RejoinInterval = -time.Second },
			wantErr: []string{"node ID", "advertise port", "rejoin interval"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{NodeID: 1}
			c.EnsureDefaults()
			tt.mutate(&c)
			err := c.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

func TestConfigDefaultsAndProfiles(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		wantProbe  time.Duration
		wantRejoin time.Duration
	}{
		{name: "lan", cfg: Config{NodeID: 1}, wantProbe: time.Second, wantRejoin: 5 * time.Second},
		{name: "local", cfg: Config{NodeID: 1, Profile: ProfileLocal}, wantProbe: time.Second, wantRejoin: 5 * time.Second},
		{name: "fast", cfg: Config{NodeID: 1, Fast: true}, wantProbe: 200 * time.Millisecond, wantRejoin: 500 * time.Millisecond},
		{name: "explicit rejoin", cfg: Config{NodeID: 1, Fast: true, RejoinInterval: time.Minute}, wantProbe: 200 * time.Millisecond, wantRejoin: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			c.BindPort = 7402
			c.EnsureDefaults()
			mc := c.memberlistConfig()
			if mc.ProbeInterval != tt.wantProbe || c.RejoinInterval != tt.wantRejoin {
				t.Errorf("probe %v rejoin %v, want %v %v", mc.ProbeInterval, c.RejoinInterval, tt.wantProbe, tt.wantRejoin)
			}
			if mc.Name != "0000000000000001" || mc.AdvertisePort != 7402 || mc.BindAddr != "0.0.0.0" {
				t.Errorf("name %q advertise port %d bind %q", mc.Name, mc.AdvertisePort, mc.BindAddr)
			}
			if mc.Logger == nil || mc.LogOutput != nil {
				t.Error("memberlist logger not routed through slog")
			}
		})
	}
}

func TestParseMemberlistLine(t *testing.T) {
	tests := []struct {
		in        string
		wantLevel slog.Level
		wantMsg   string
	}{
		{in: "[DEBUG] memberlist: Stream connection from=x\n", wantLevel: slog.LevelDebug, wantMsg: "Stream connection from=x"},
		{in: "[INFO] memberlist: Marking a as failed\n", wantLevel: slog.LevelDebug, wantMsg: "Marking a as failed"},
		{in: "[WARN] memberlist: Refuting\n", wantLevel: slog.LevelWarn, wantMsg: "Refuting"},
		{in: "[ERR] memberlist: Push/Pull failed\n", wantLevel: slog.LevelWarn, wantMsg: "Push/Pull failed"},
		{in: "no tag at all", wantLevel: slog.LevelDebug, wantMsg: "no tag at all"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			level, msg := parseMemberlistLine([]byte(tt.in))
			if level != tt.wantLevel || msg != tt.wantMsg {
				t.Errorf("got %v %q, want %v %q", level, msg, tt.wantLevel, tt.wantMsg)
			}
		})
	}
}

func TestParseNodeName(t *testing.T) {
	tests := []struct {
		in     string
		want   ids.NodeID
		wantOK bool
	}{
		{in: nodeName(1), want: 1, wantOK: true},
		{in: nodeName(^ids.NodeID(0)), want: ^ids.NodeID(0), wantOK: true},
		{in: "1", wantOK: false},
		{in: "000000000000000g", wantOK: false},
		{in: "0000000000000000", wantOK: false},
		{in: "my-host", wantOK: false},
	}
	for _, tt := range tests {
		got, ok := parseNodeName(tt.in)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("parseNodeName(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestEventsDropOldestWhenFull(t *testing.T) {
	g := &Gossip{events: make(chan Event, 3), log: slog.New(slog.DiscardHandler)}
	g.mu.Lock()
	for id := ids.NodeID(1); id <= 10; id++ {
		g.emitLocked(Event{NodeID: id, State: StateAlive})
	}
	g.closed = true
	close(g.events)
	g.emitLocked(Event{NodeID: 11}) // after close: ignored, no panic
	g.mu.Unlock()
	var got []ids.NodeID
	for ev := range g.events {
		got = append(got, ev.NodeID)
	}
	if len(got) != 3 || got[0] != 8 || got[2] != 10 {
		t.Errorf("kept %v, want the newest three [8 9 10]", got)
	}
	if g.dropped != 7 {
		t.Errorf("dropped = %d, want 7", g.dropped)
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig(42)
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig invalid: %v", err)
	}
	if c.BindPort != DefaultPort || c.Profile != ProfileLAN || c.RejoinInterval != DefaultRejoinInterval {
		t.Errorf("unexpected defaults: %+v", c)
	}
}
