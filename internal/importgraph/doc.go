// Package importgraph holds the test that keeps shardlog's import graph to the one
// drawn in docs/design.md. It has no code of its own: its test runs `go list` over the
// module and fails on any import outside the graph, and on any package the graph does
// not name, so that a new arrow or a new package is a decision and not an accident.
package importgraph
