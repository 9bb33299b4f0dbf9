package chaos

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"

	"shardlog/localcluster"
)

// Netns gives every node its own network namespace and address, joined by a bridge in
// the harness's namespace, so that partitions can drop traffic between nodes (TCP and
// UDP, both ways) with nftables while the nodes know nothing about it. The harness
// itself reaches every node through the bridge at all times.
type Netns struct {
	log    *slog.Logger
	prefix string // names: bridge <prefix>br, namespaces <prefix>n<i>, host veths <prefix>v<i>
	subnet string // "10.213.X"
	nodes  int
	made   []string // namespaces created, for Close
	bridge bool
}

// NetnsAvailable says why network namespaces cannot be used here, or nil when they can:
// they need root, iproute2 (ip) and nftables (nft); chaos/setup-netns.sh installs both.
func NetnsAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("chaos: partitions need root (network namespaces)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("chaos: partitions need %s (run chaos/setup-netns.sh): %w", tool, err)
		}
	}
	return nil
}

// NewNetns creates a bridge and one namespace per node. The names and the /24 subnet are
// derived from the harness's PID so concurrent runs do not collide.
func NewNetns(nodes int, log *slog.Logger) (*Netns, error) {
	if err := NetnsAvailable(); err != nil {
		return nil, err
	}
	pid := os.Getpid()
	subnet, err := freeSubnet(pid)
	if err != nil {
		return nil, err
	}
	n := &Netns{log: log, prefix: fmt.Sprintf("sc%d", pid), subnet: subnet, nodes: nodes}
	br := n.prefix + "br"
	// Leftovers of a crashed run with the same PID would make the commands below fail.
	n.cleanup()
	removeStale(log)
	steps := [][]string{
		{"link", "add", br, "type", "bridge"},
		{"addr", "add", n.subnet + ".254/24", "dev", br},
		{"link", "set", br, "up"},
	}
	if err := n.ipAll(steps); err != nil {
		n.Close()
		return nil, err
	}
	n.bridge = true
	for i := range nodes {
		ns, veth := n.ns(i), fmt.Sprintf("%sv%d", n.prefix, i)
		if err := ip("netns", "add", ns); err != nil {
			n.Close()
			return nil, err
		}
		n.made = append(n.made, ns)
		err := n.ipAll([][]string{
			{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"link", "set", veth, "master", br, "up"},
			{"-n", ns, "addr", "add", n.Addr(i) + "/24", "dev", "eth0"},
			{"-n", ns, "link", "set", "eth0", "up"},
			{"-n", ns, "link", "set", "lo", "up"},
		})
		if err != nil {
			n.Close()
			return nil, err
		}
	}
	log.Info("network namespaces ready", "bridge", br, "subnet", n.subnet+".0/24", "nodes", nodes)
	return n, nil
}

// freeSubnet returns a 10.213.X prefix that no interface of this namespace uses, starting
// the search at one derived from pid so that concurrent runs rarely race for the same one.
func freeSubnet(pid int) (string, error) {
	out, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		return "", fmt.Errorf("chaos: ip addr show: %w", err)
	}
	for k := range 250 {
		subnet := fmt.Sprintf("10.213.%d", 1+(pid+k)%250)
		if !bytes.Contains(out, []byte(" "+subnet+".")) {
			return subnet, nil
		}
	}
	return "", errors.New("chaos: no free 10.213.X.0/24 subnet for the namespaces")
}

func (n *Netns) ns(i int) string { return fmt.Sprintf("%sn%d", n.prefix, i) }

// Addr returns node i's IP address.
func (n *Netns) Addr(i int) string { return fmt.Sprintf("%s.%d", n.subnet, i+1) }

// Wrap returns the command that runs name args inside node i's namespace.
func (n *Netns) Wrap(i int, name string, args []string) (string, []string) {
	return "ip", append([]string{"netns", "exec", n.ns(i), name}, args...)
}

// Partition drops all traffic between the node pairs that cut names, both ways. It
// replaces any partition in place.
func (n *Netns) Partition(cut Cut) error {
	if err := n.Heal(); err != nil {
		return err
	}
	peers := make([][]string, n.nodes)
	for _, p := range cut.Pairs {
		peers[p[0]] = append(peers[p[0]], n.Addr(p[1]))
		peers[p[1]] = append(peers[p[1]], n.Addr(p[0]))
	}
	for i, ps := range peers {
		if len(ps) == 0 {
			continue
		}
		set := strings.Join(ps, ", ")
		rules := fmt.Sprintf(`table inet shardlog_chaos {
	chain input { type filter hook input priority 0; policy accept; ip saddr { %s } drop; }
	chain output { type filter hook output priority 0; policy accept; ip daddr { %s } drop; }
}
`, set, set)
		cmd := exec.Command("ip", "netns", "exec", n.ns(i), "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("chaos: nft in %s: %v: %s", n.ns(i), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// Heal removes every partition rule.
func (n *Netns) Heal() error {
	var errs []error
	for i := range n.nodes {
		cmd := exec.Command("ip", "netns", "exec", n.ns(i), "nft", "list", "tables")
		out, err := cmd.Output()
		if err != nil {
			errs = append(errs, fmt.Errorf("chaos: nft list in %s: %w", n.ns(i), err))
			continue
		}
		if !bytes.Contains(out, []byte("shardlog_chaos")) {
			continue
		}
		if out, err := exec.Command("ip", "netns", "exec", n.ns(i), "nft", "delete", "table", "inet", "shardlog_chaos").CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("chaos: nft delete in %s: %v: %s", n.ns(i), err, bytes.TrimSpace(out)))
		}
	}
	return errors.Join(errs...)
}

// Close deletes the namespaces (and with them the veths) and the bridge.
func (n *Netns) Close() {
	n.cleanup()
	n.made, n.bridge = nil, false
}

func (n *Netns) cleanup() {
	for i := range n.nodes {
		if _, err := os.Stat("/run/netns/" + n.ns(i)); err == nil {
			if err := ip("netns", "delete", n.ns(i)); err != nil {
				n.log.Warn("remove namespace", "err", err)
			}
		}
	}
	if _, err := os.Stat("/sys/class/net/" + n.prefix + "br"); err == nil {
		if err := ip("link", "delete", n.prefix+"br"); err != nil {
			n.log.Warn("remove bridge", "err", err)
		}
	}
}

// removeStale deletes namespaces and bridges that runs killed before their cleanup left
// behind: those named after a harness PID that no longer exists.
func removeStale(log *slog.Logger) {
	entries, _ := os.ReadDir("/run/netns")
	links, _ := os.ReadDir("/sys/class/net")
	for _, e := range append(entries, links...) {
		var pid, i int
		var kind string
		name := e.Name()
		if _, err := fmt.Sscanf(name, "sc%d%1s%d", &pid, &kind, &i); err != nil && !strings.HasSuffix(name, "br") {
			continue
		}
		if !strings.HasPrefix(name, "sc") || pid <= 0 {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its harness still runs (or the PID was reused: leave it)
		}
		args := []string{"netns", "delete", name}
		if strings.HasSuffix(name, "br") {
			args = []string{"link", "delete", name}
		} else if kind != "n" {
			continue
		}
		if err := ip(args...); err != nil {
			log.Warn("remove stale namespace", "name", name, "err", err)
		} else {
			log.Info("removed stale namespace of a dead run", "name", name)
		}
	}
}

func (n *Netns) ipAll(steps [][]string) error {
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	return nil
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("chaos: ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Cut is a partition: the pairs of node indexes that cannot talk to each other.
type Cut struct {
	// Groups are the sides, for the report: nodes in one group see each other.
	Groups [][]int
	// Pairs are the cut links (a < b).
	Pairs [][2]int
}

// describe renders the cut with node names, one entry per group.
func (c Cut) describe(nodes []*localcluster.Node) []string {
	var out []string
	for _, g := range c.Groups {
		var names []string
		for _, i := range g {
			names = append(names, nodes[i].Name)
		}
		out = append(out, strings.Join(names, "+"))
	}
	return out
}

// Sides computes a partition of n nodes of the given shape (pure): pick orders the nodes,
// leader (-1 when unknown) is isolated by PartitionIsolateLeader.
func Sides(shape string, n int, pick uint64, leader int) Cut {
	order := NewRand(pick).Perm(n)
	var a, b, bridge []int
	switch shape {
	case PartitionIsolateLeader:
		if leader < 0 || leader >= n {
			leader = order[0]
		}
		a = []int{leader}
		for i := range n {
			if i != leader {
				b = append(b, i)
			}
		}
	case PartitionBridge:
		bridge = order[:1]
		rest := order[1:]
		a, b = rest[:len(rest)/2], rest[len(rest)/2:]
	default: // PartitionMajority
		minority := (n - 1) / 2
		a, b = order[:minority], order[minority:]
	}
	c := Cut{Groups: [][]int{a, b}}
	if len(bridge) > 0 {
		c.Groups = append(c.Groups, bridge)
	}
	for _, x := range a {
		for _, y := range b {
			c.Pairs = append(c.Pairs, [2]int{min(x, y), max(x, y)})
		}
	}
	return c
}
