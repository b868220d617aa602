package status

import (
	"context"
	"sync"
	"time"
)

// Cluster is where the nodes of a cluster announce themselves, each with
// an expiry, so that a node that stops announcing drops out of the list.
type Cluster interface {
	// Announce records n for ttl.
	Announce(ctx context.Context, n Node, ttl time.Duration) error
	// Nodes lists the nodes whose announcement has not expired, by id.
	Nodes(ctx context.Context) ([]Node, error)
}

// LocalCluster is the cluster of a single node (the in-process bus): it
// lists the node that announced itself last.
type LocalCluster struct {
	mu      sync.Mutex
	node    Node
	expires time.Time
}

var _ Cluster = (*LocalCluster)(nil)

// NewLocalCluster returns an empty LocalCluster.
func NewLocalCluster() *LocalCluster { return &LocalCluster{} }

// Announce records n for ttl.
func (c *LocalCluster) Announce(_ context.Context, n Node, ttl time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.node, c.expires = n, time.Now().Add(ttl)
	return nil
}

// Nodes lists the node, unless its announcement expired.
func (c *LocalCluster) Nodes(context.Context) ([]Node, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.node.ID == "" || time.Now().After(c.expires) {
		return nil, nil
	}
	return []Node{c.node}, nil
}
