package localcluster

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// Fields after the command: state ppid pgrp session tty tpgid flags minflt cminflt
	// majflt cmajflt utime stime ...
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr bool
	}{
		{"plain", "1234 (shardlog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 0 0", 3 * time.Second, false},
		{"spaces and parens in the name", "77 (a b) (c)) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0", 100 * time.Millisecond, false},
		{"zero", "5 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0", 0, false},
		{"truncated", "5 (x) S 1 1 1", 0, true},
		{"no name", "5 x S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0", 0, true},
		{"not numbers", "5 (x) S 1 1 1 0 -1 0 0 0 0 0 a b 0 0", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatCPU(tt.stat)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseStatCPU = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseStatusMemory(t *testing.T) {
	tests := []struct {
		name     string
		status   string
		hwm, rss int64
		wantErr  bool
	}{
		{"normal", "Name:\tshardlog\nVmPeak:\t 999 kB\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t9\n", 2 << 20, 1 << 20, false},
		{"missing", "Name:\tx\nVmRSS:\t1 kB\n", 0, 0, true},
		{"bad unit", "VmHWM:\t2 MB\nVmRSS:\t1 kB\n", 0, 0, true},
		{"bad number", "VmHWM:\tx kB\nVmRSS:\t1 kB\n", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hwm, rss, err := ParseStatusMemory(tt.status)
			if (err != nil) != tt.wantErr || hwm != tt.hwm || rss != tt.rss {
				t.Fatalf("ParseStatusMemory = %d, %d, %v; want %d, %d, error %v", hwm, rss, err, tt.hwm, tt.rss, tt.wantErr)
			}
		})
	}
}

func TestReadProcSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	end := time.Now().Add(30 * time.Millisecond)
	for time.Now().Before(end) { // burn a little CPU so that utime moves
	}
	s, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.PeakRSS <= 0 || s.RSS <= 0 || s.PeakRSS < s.RSS || s.CPU < 0 {
		t.Fatalf("implausible sample %+v", s)
	}
	if _, err := ReadProc(-1); err == nil {
		t.Fatal("ReadProc(-1) succeeded")
	}
}

func FuzzParseStatCPU(f *testing.F) {
	f.Add("1234 (shardlog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 0 0")
	f.Add("1 ()) R")
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := ParseStatCPU(s); err == nil && d < 0 {
			t.Fatalf("negative CPU %v from %q", d, s)
		}
	})
}

func TestParseStatState(t *testing.T) {
	tests := []struct {
		name  string
		stat  string
		state byte
		ok    bool
	}{
		{"running", "1234 (shardlog) R 1 1234 1234 0 -1", 'R', true},
		{"stopped", "1234 (shardlog) T 1 1234 1234 0 -1", 'T', true},
		{"name with spaces and parens", "99 (a (b) c) S 1 2 3", 'S', true},
		{"no command name", "1234 shardlog T 1", 0, false},
		{"nothing after the name", "1234 (shardlog)", 0, false},
		{"not one letter", "1234 (shardlog) TT 1", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := ParseStatState(tt.stat)
			if (err == nil) != tt.ok || st != tt.state {
				t.Errorf("ParseStatState = %q, %v; want %q, ok=%v", st, err, tt.state, tt.ok)
			}
		})
	}
}
