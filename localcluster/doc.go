// Package localcluster starts, waits for and stops local `shardlog server` processes:
// the development cluster (`shardlog dev`), the benchmark harness (bench) and the
// fault-injection harness (chaos) all run their servers through it.
//
// NewCluster prepares the nodes (data directories, ports, command lines); Start starts
// them one by one, each joining through the first, and waits until every node is
// registered and ALIVE. StartNode, Kill, Pause and Resume act on one process by its PID
// (chaos and bench failover use them to inject faults); Stop ends every process with
// SIGTERM and a grace period, Close with SIGKILL. Every process runs in its own process
// group, so a Ctrl-C in the terminal reaches only the harness, which then stops the
// nodes itself, and dies with the harness (Pdeathsig).
//
// ReadProc and ReadState read a process's resource use and state from /proc.
//
// The package depends on the generated proto code only: it asks a node whether it
// serves with the Admin service's DescribeCluster.
package localcluster
