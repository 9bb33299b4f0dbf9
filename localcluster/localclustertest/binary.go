// Package localclustertest builds the shardlog binary for tests that start real server
// processes through localcluster (localcluster's, bench's and chaos's tests).
package localclustertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	mu     sync.Mutex
	built  string // the binary built by this test process, once
	dir    string // its directory, removed by Cleanup
	errBin error
)

// Binary returns the shardlog binary named by the environment variable env when set,
// else one built from ./cmd/shardlog of this module once per test process. Call
// Cleanup from TestMain to remove the built binary.
func Binary(t testing.TB, env string) string {
	t.Helper()
	if bin := os.Getenv(env); bin != "" {
		return bin
	}
	mu.Lock()
	defer mu.Unlock()
	if built == "" && errBin == nil {
		built, errBin = build()
	}
	if errBin != nil {
		t.Fatal(errBin)
	}
	return built
}

func build() (string, error) {
	d, err := os.MkdirTemp("", "shardlog-test-bin-")
	if err != nil {
		return "", fmt.Errorf("localclustertest: %w", err)
	}
	dir = d
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("localclustertest: no source path to find the module")
	}
	bin := filepath.Join(d, "shardlog")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/shardlog")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/shardlog: %w\n%s", err, out)
	}
	return bin, nil
}

// Cleanup removes the binary Binary built, if any.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	dir, built, errBin = "", "", nil
}
