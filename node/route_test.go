package node

import (
	"testing"
	"time"
)

func TestRouteBackoff(t *testing.T) {
	want := []time.Duration{10, 20, 40, 80, 100, 100, 100}
	for i, w := range want {
		if got := routeBackoff(i); got != w*time.Millisecond {
			t.Errorf("routeBackoff(%d) = %v, want %v", i, got, w*time.Millisecond)
		}
	}
	if got := routeBackoff(1000); got != 100*time.Millisecond {
		t.Errorf("routeBackoff(1000) = %v, want the 100 ms cap", got)
	}
}
