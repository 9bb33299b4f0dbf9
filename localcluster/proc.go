package localcluster

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat; Linux fixes
// it at 100 on every architecture Go supports.
const clockTicks = 100

// ProcSample is one reading of a process's resource use.
type ProcSample struct {
	// CPU is user plus system CPU time since the process started.
	CPU time.Duration
	// PeakRSS is the peak resident set size (VmHWM), in bytes.
	PeakRSS int64
	// RSS is the current resident set size (VmRSS), in bytes.
	RSS int64
}

// ReadProc reads pid's CPU time and memory from /proc.
func ReadProc(pid int) (ProcSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("localcluster: %w", err)
	}
	cpu, err := ParseStatCPU(string(stat))
	if err != nil {
		return ProcSample{}, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("localcluster: %w", err)
	}
	hwm, rss, err := ParseStatusMemory(string(status))
	if err != nil {
		return ProcSample{}, err
	}
	return ProcSample{CPU: cpu, PeakRSS: hwm, RSS: rss}, nil
}

// ParseStatCPU returns utime+stime from the contents of /proc/<pid>/stat. The command
// name (field 2) may hold spaces and parentheses, so fields are counted after its last
// ')'.
func ParseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("localcluster: /proc stat: no command name in %q", trim(stat))
	}
	// After ")": field 3 (state) is the first; utime and stime are fields 14 and 15.
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("localcluster: /proc stat: %d fields after the command name, want at least 13", len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("localcluster: /proc stat: bad utime %q or stime %q", f[11], f[12])
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// ParseStatusMemory returns VmHWM and VmRSS, in bytes, from the contents of
// /proc/<pid>/status.
func ParseStatusMemory(status string) (hwm, rss int64, err error) {
	var haveHWM, haveRSS bool
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmHWM" && name != "VmRSS") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("localcluster: /proc status: bad %s line %q", name, sc.Text())
		}
		kb, perr := strconv.ParseInt(f[0], 10, 64)
		if perr != nil {
			return 0, 0, fmt.Errorf("localcluster: /proc status: bad %s value %q", name, f[0])
		}
		if name == "VmHWM" {
			hwm, haveHWM = kb<<10, true
		} else {
			rss, haveRSS = kb<<10, true
		}
	}
	if !haveHWM || !haveRSS {
		return 0, 0, fmt.Errorf("localcluster: /proc status: no VmHWM or VmRSS line")
	}
	return hwm, rss, nil
}

// ReadState returns pid's state letter (R, S, D, T, t, Z...) from /proc/<pid>/stat.
func ReadState(pid int) (byte, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("localcluster: %w", err)
	}
	return ParseStatState(string(stat))
}

// ParseStatState returns the state letter (field 3: R, S, D, T, t, Z...) of the
// contents of /proc/<pid>/stat. The command name (field 2) may hold spaces and
// parentheses, so the state is the first field after its last ')'.
func ParseStatState(stat string) (byte, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("localcluster: /proc stat: no command name in %q", trim(stat))
	}
	f := strings.Fields(stat[i+1:])
	if len(f) == 0 || len(f[0]) != 1 {
		return 0, fmt.Errorf("localcluster: /proc stat: no state after the command name in %q", trim(stat))
	}
	return f[0][0], nil
}

func trim(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
