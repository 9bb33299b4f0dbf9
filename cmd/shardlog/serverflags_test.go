package main

import (
	"flag"
	"io"
	"reflect"
	"testing"

	"shardlog/node"
)

// TestServerFlagDefaultsAreDefaultConfig: a server started without flags runs
// node.DefaultConfig, the configuration nodetest clusters start from; a flag set
// changes only its own field.
func TestServerFlagDefaultsAreDefaultConfig(t *testing.T) {
	parse := func(args ...string) node.Config {
		fs := flag.NewFlagSet("server", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg := node.DefaultConfig()
		serverFlags(fs, &cfg)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if got, want := parse(), node.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Fatalf("server flags without arguments:\n got  %+v\n want %+v", got, want)
	}
	got := parse("--quiesce=false", "--port", "7500", "--min-free-disk", "0")
	want := node.DefaultConfig()
	want.Quiesce, want.Port, want.MinFreeDiskBytes = false, 7500, -1
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("server flags with three set:\n got  %+v\n want %+v", got, want)
	}
}
