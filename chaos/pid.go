package chaos

// PID returns the operating-system process ID of node i's current process, or 0 when
// the node has never been started or its process has exited.
func (c *Cluster) PID(i int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[i]
	if !c.runningLocked(n) {
		return 0
	}
	return n.cmd.Process.Pid
}
