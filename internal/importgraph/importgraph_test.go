package importgraph

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "shardlog"

// allowed is the intended graph: for each package of the module (non-test files),
// the module packages it may import. Floors from the bottom: batch, ids and proto have
// no module imports (ids names the node, shard and replica IDs and offsets that cross
// packages); placement and gossip use only ids; segment stores batches; meta and shard are the two
// kinds of state machine; node wires them; client speaks only the protocol and the
// batch format; localcluster starts server processes for the tools above it.
var allowed = map[string][]string{
	"batch":                         nil,
	"ids":                           nil,
	"placement":                     {"ids"},
	"gossip":                        {"ids"},
	"proto/shardlogv1":              nil,
	"tlsconf":                       nil,
	"segment":                       {"batch", "ids"},
	"meta":                          {"ids", "placement"},
	"shard":                         {"batch", "ids", "segment"},
	"node":                          {"batch", "gossip", "ids", "meta", "placement", "proto/shardlogv1", "segment", "shard"},
	"node/nodetest":                 {"client", "node"},
	"node/crashtest":                {"chaos"},
	"client":                        {"batch", "proto/shardlogv1"},
	"client/clienttest":             {"batch", "proto/shardlogv1"},
	"localcluster":                  {"client", "proto/shardlogv1"},
	"localcluster/localclustertest": nil,
	"chaos":                         {"batch", "client", "localcluster", "proto/shardlogv1"},
	"bench":                         {"batch", "client", "ids", "localcluster", "proto/shardlogv1", "segment"},
	"cmd/shardlog":                  {"batch", "bench", "chaos", "client", "localcluster", "node", "proto/shardlogv1"},
	"internal/importgraph":          nil,
}

// heavy are the storage, Raft and gossip libraries, each with the packages that may
// import it directly; every other package reaches them through those.
var heavy = map[string][]string{
	"github.com/cockroachdb/pebble":   {"segment", "node", "node/crashtest"},
	"github.com/lni/dragonboat":       {"meta", "shard", "node"},
	"github.com/lni/vfs":              {"node/crashtest"},
	"github.com/hashicorp/memberlist": {"gossip"},
}

// light are the packages whose whole dependency tree must stay free of every heavy
// library: what a client program links.
var light = []string{"batch", "client", "client/clienttest", "ids", "proto/shardlogv1", "tlsconf"}

type pkg struct {
	path    string // relative to the module, "" for the root
	imports []string
	deps    []string
}

// list runs go list over the module.
func list(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-f", "{{.ImportPath}}|{{join .Imports \",\"}}|{{join .Deps \",\"}}|{{.Error}}", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "|")
		if len(f) != 4 {
			t.Fatalf("go list line %q", sc.Text())
		}
		if f[3] != "<nil>" {
			t.Fatalf("go list %s: %s", f[0], f[3])
		}
		pkgs = append(pkgs, pkg{path: rel(f[0]), imports: split(f[1]), deps: split(f[2])})
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// rel strips the module path; ok is false for a path outside the module.
func rel(p string) string {
	if p == module {
		return ""
	}
	return strings.TrimPrefix(p, module+"/")
}

func inModule(p string) bool { return p == module || strings.HasPrefix(p, module+"/") }

// heavyOf returns the heavy library p belongs to, or "".
func heavyOf(p string) string {
	for lib := range heavy {
		if p == lib || strings.HasPrefix(p, lib+"/") {
			return lib
		}
	}
	return ""
}

// violations checks pkgs against the graph and returns one line per problem.
func violations(pkgs []pkg) []string {
	var bad []string
	for _, p := range pkgs {
		may, known := allowed[p.path]
		if !known {
			bad = append(bad, fmt.Sprintf("%s: a package the graph does not name (add it to allowed and docs/design.md)", p.path))
			continue
		}
		for _, imp := range p.imports {
			switch lib := heavyOf(imp); {
			case inModule(imp) && !slices.Contains(may, rel(imp)):
				bad = append(bad, fmt.Sprintf("%s imports %s, outside the graph", p.path, rel(imp)))
			case lib != "" && !slices.Contains(heavy[lib], p.path):
				bad = append(bad, fmt.Sprintf("%s imports %s; only %v may", p.path, imp, heavy[lib]))
			}
		}
		if slices.Contains(light, p.path) {
			var linked []string
			for _, d := range p.deps {
				if heavyOf(d) != "" {
					linked = append(linked, d)
				}
			}
			if len(linked) > 0 {
				bad = append(bad, fmt.Sprintf("%s links %d packages of storage, Raft or gossip libraries (%s, ...); client programs must not",
					p.path, len(linked), linked[0]))
			}
		}
	}
	return bad
}

func TestImportGraph(t *testing.T) {
	pkgs := list(t)
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
	seen := map[string]bool{}
	for _, p := range pkgs {
		seen[p.path] = true
	}
	for _, l := range light {
		if !seen[l] {
			t.Errorf("light package %s not found by go list", l)
		}
	}
}

// TestViolationsCatch: each kind of arrow the graph forbids is reported.
func TestViolationsCatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    pkg
		want string
	}{
		{"module import outside the graph", pkg{path: "client", imports: []string{"shardlog/segment"}}, "client imports segment, outside the graph"},
		{"upward import", pkg{path: "shard", imports: []string{"shardlog/node"}}, "shard imports node"},
		{"bench starting processes through chaos", pkg{path: "bench", imports: []string{"shardlog/chaos"}}, "bench imports chaos"},
		{"heavy library in the wrong package", pkg{path: "meta", imports: []string{"github.com/cockroachdb/pebble/v2"}}, "only [segment node node/crashtest] may"},
		{"client linking Pebble", pkg{path: "client", deps: []string{"github.com/cockroachdb/pebble/v2/vfs"}}, "client links 1 packages of storage, Raft or gossip libraries (github.com/cockroachdb/pebble/v2/vfs, ...)"},
		{"unknown package", pkg{path: "newpkg"}, "newpkg: a package the graph does not name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := violations([]pkg{tc.p})
			if len(got) != 1 || !strings.Contains(got[0], tc.want) {
				t.Fatalf("violations = %q, want one containing %q", got, tc.want)
			}
		})
	}
	if got := violations([]pkg{{path: "client", imports: []string{"shardlog/batch", "google.golang.org/grpc"}, deps: []string{"google.golang.org/grpc"}}}); len(got) != 0 {
		t.Fatalf("allowed imports reported: %q", got)
	}
}
