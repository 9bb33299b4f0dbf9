package bench

import (
	"testing"
)

func TestParseKeyDist(t *testing.T) {
	tests := []struct {
		in      string
		want    KeyDist
		wantErr bool
	}{
		{"none", KeyDist{Kind: KeysNone}, false},
		{"uniform:10", KeyDist{Kind: KeysUniform, N: 10}, false},
		{"zipf:1000000", KeyDist{Kind: KeysZipf, N: 1000000}, false},
		{"uniform", KeyDist{}, true},
		{"uniform:0", KeyDist{}, true},
		{"zipf:-3", KeyDist{}, true},
		{"zipf:x", KeyDist{}, true},
		{"none:3", KeyDist{}, true},
		{"gauss:10", KeyDist{}, true},
		{"", KeyDist{}, true},
	}
	for _, tt := range tests {
		got, err := ParseKeyDist(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseKeyDist(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
}

func TestKeyDistributions(t *testing.T) {
	const draws = 100000
	count := func(d KeyDist) []int {
		g := d.NewGen(1)
		c := make([]int, d.N)
		for range draws {
			i := g.Index()
			if i < 0 || uint64(i) >= d.N {
				t.Fatalf("%s: index %d out of range", d, i)
			}
			c[i]++
		}
		return c
	}
	t.Run("uniform", func(t *testing.T) {
		c := count(KeyDist{Kind: KeysUniform, N: 10})
		for i, n := range c {
			if n < draws/10*8/10 || n > draws/10*12/10 {
				t.Errorf("key %d drawn %d times, want about %d", i, n, draws/10)
			}
		}
	})
	t.Run("zipf", func(t *testing.T) {
		c := count(KeyDist{Kind: KeysZipf, N: 1000})
		if c[0] <= c[1] || c[1] <= c[10] || c[10] <= c[500] {
			t.Errorf("zipf not decreasing: key0 %d key1 %d key10 %d key500 %d", c[0], c[1], c[10], c[500])
		}
		if c[0] < 50*draws/1000 {
			t.Errorf("hottest key drawn %d times, want far above uniform's %d", c[0], draws/1000)
		}
	})
	t.Run("none", func(t *testing.T) {
		g := KeyDist{Kind: KeysNone}.NewGen(1)
		if k := g.Next(); k != nil {
			t.Fatalf("none made key %q", k)
		}
	})
	t.Run("key bytes", func(t *testing.T) {
		g := KeyDist{Kind: KeysUniform, N: 1}.NewGen(1)
		if k := string(g.Next()); k != "k0" {
			t.Fatalf("key %q, want k0", k)
		}
	})
}
