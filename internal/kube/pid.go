package kube

// PID returns the process id of a running component (one of the Component
// constants), or 0 if the cluster has no such component. Benchmarks read a
// component's CPU time and memory from /proc with it.
func (c *Cluster) PID(component string) int {
	p := c.proc(component)
	if p == nil {
		return 0
	}
	return p.PID()
}
