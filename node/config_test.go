package node

import (
	"strings"
	"testing"
)

func TestConfigValidateRaftStorage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(c *Config)
		wantErr string // "" = valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"tan", func(c *Config) { c.LogDB = "tan" }, ""},
		{"unknown logdb", func(c *Config) { c.LogDB = "rocksdb" }, `--logdb "rocksdb" must be pebble or tan`},
		{"one exec shard", func(c *Config) { c.ExecShards = 1 }, ""},
		{"sixteen exec shards", func(c *Config) { c.ExecShards = 16 }, ""},
		{"three exec shards", func(c *Config) { c.ExecShards = 3 }, "--exec-shards 3 must be 1, 2, 4, 8 or 16"},
		{"too many exec shards", func(c *Config) { c.ExecShards = 32 }, "--exec-shards 32 must be 1, 2, 4, 8 or 16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Dir: t.TempDir(), Host: "127.0.0.1", Port: 7400, RaftPort: 7401, GossipPort: 7402}
			c.EnsureDefaults()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
