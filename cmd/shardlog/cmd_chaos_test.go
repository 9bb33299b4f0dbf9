package main

import (
	"bytes"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"shardlog/chaos"
	"shardlog/localcluster/localclustertest"
)

func TestChaosCommandRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"unknown fault", []string{"--faults", "explode"}},
		{"unknown flag", []string{"--bogus"}},
		{"stray argument", []string{"now"}},
		{"replication above nodes", []string{"--nodes", "3", "--replication-factor", "5", "--faults", "kill"}},
		{"too short", []string{"--duration", "1s", "--faults", "kill"}},
		{"missing binary", []string{"--faults", "kill", "--duration", "10s"}},
		{"zero availability bound", []string{"--faults", "kill", "--max-unavailable", "0s"}},
		{"negative availability bound", []string{"--faults", "kill", "--max-unavailable", "-1s"}},
		{"zero idle interval", []string{"--faults", "kill", "--idle-interval", "0s"}},
		{"idle interval too short", []string{"--faults", "kill", "--idle-interval", "1ms"}},
		{"zero retention", []string{"--faults", "kill", "--retention", "0s"}},
		{"zero retention rate", []string{"--faults", "kill", "--retention-rate", "0"}},
		{"negative idle shards", []string{"--faults", "kill", "--idle-shards", "-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := chaosMain(t.Context(), append(tt.args, "--binary", "/nonexistent"), &out, &errb); code != chaosExitInconclusive {
				t.Fatalf("exit %d, want %d; stderr %s", code, chaosExitInconclusive, errb.String())
			}
		})
	}
}

func TestChaosCommandFlagDefaults(t *testing.T) {
	cfg, jsonOut, ok := chaosFlags([]string{"--faults", "kill,pause", "--seed", "7"}, io.Discard)
	if !ok || jsonOut {
		t.Fatalf("ok %v, json %v", ok, jsonOut)
	}
	if cfg.Nodes != 5 || cfg.Shards != 8 || cfg.ReplicationFactor != 3 || cfg.Duration != time.Minute || cfg.Seed != 7 ||
		cfg.IdleShards != 8 || cfg.RetentionShards != 2 || cfg.ServerLogLevel != "info" || cfg.Binary == "" || cfg.Logger == nil ||
		!slices.Equal(cfg.Faults, []string{chaos.FaultKill, chaos.FaultPause}) {
		t.Errorf("defaults %+v", cfg)
	}
	// On the command line 0 means none; in Config 0 would mean the default.
	cfg, _, ok = chaosFlags([]string{"--idle-shards", "0", "--retention-shards", "0", "--json"}, io.Discard)
	if !ok || cfg.IdleShards != -1 || cfg.RetentionShards != -1 || cfg.Seed == 0 {
		t.Errorf("ok %v, idle %d, retention %d, seed %d", ok, cfg.IdleShards, cfg.RetentionShards, cfg.Seed)
	}
}

// TestChaosCommandInterruptedEndsAtOnce: a signal (main's context ending) in the
// middle of a run ends `shardlog chaos` within seconds, inconclusive, with a report.
func TestChaosCommandInterruptedEndsAtOnce(t *testing.T) {
	bin := localclustertest.Binary(t, "SHARDLOG_BINARY")
	ctx := interruptAfter(t, 12*time.Second, os.Interrupt)
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- chaosMain(ctx, []string{"--binary", bin, "--dir", t.TempDir(), "--nodes", "3", "--faults", "kill,pause",
			"--duration", "60s", "--seed", "1", "--idle-shards", "0", "--retention-shards", "0"}, &out, &errb)
	}()
	select {
	case code := <-done:
		if code != chaosExitInconclusive || !strings.Contains(out.String(), "verdict             INCONCLUSIVE") {
			t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, chaosExitInconclusive, out.String(), errb.String())
		}
	case <-time.After(12*time.Second + 20*time.Second):
		t.Fatalf("chaos still running 20s after the interrupt\nstderr: %s", errb.String())
	}
}
