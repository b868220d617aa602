package status

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// MaxNodes bounds how many announced nodes RedisCluster lists.
const MaxNodes = 256

// RedisCluster announces nodes in Redis: a sorted set <prefix>:nodes of
// node ids scored by their expiry (Unix ms), and one key
// <prefix>:node:<id> per node holding its JSON, with the same expiry.
// Nodes drops the expired ids before it reads the rest, so the set does
// not grow with nodes that went away.
type RedisCluster struct {
	client redis.UniversalClient
	prefix string
}

var _ Cluster = (*RedisCluster)(nil)

// NewRedisCluster returns the cluster kept under prefix (the bus's stream
// key, so that two gateways sharing a Redis keep apart).
func NewRedisCluster(client redis.UniversalClient, prefix string) *RedisCluster {
	return &RedisCluster{client: client, prefix: prefix}
}

func (c *RedisCluster) setKey() string           { return c.prefix + ":nodes" }
func (c *RedisCluster) nodeKey(id string) string { return c.prefix + ":node:" + id }

// Announce records n for ttl.
func (c *RedisCluster) Announce(ctx context.Context, n Node, ttl time.Duration) error {
	b, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("status: encode node: %w", err)
	}
	expires := time.Now().Add(ttl).UnixMilli()
	_, err = c.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, c.nodeKey(n.ID), b, ttl)
		p.ZAdd(ctx, c.setKey(), redis.Z{Score: float64(expires), Member: n.ID})
		return nil
	})
	if err != nil {
		return fmt.Errorf("status: announce %s: %w", n.ID, err)
	}
	return nil
}

// Nodes lists the nodes whose announcement has not expired (at most
// MaxNodes), by id.
func (c *RedisCluster) Nodes(ctx context.Context) ([]Node, error) {
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	if err := c.client.ZRemRangeByScore(ctx, c.setKey(), "-inf", "("+now).Err(); err != nil {
		return nil, fmt.Errorf("status: drop expired nodes: %w", err)
	}
	ids, err := c.client.ZRange(ctx, c.setKey(), 0, MaxNodes-1).Result()
	if err != nil {
		return nil, fmt.Errorf("status: list nodes: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = c.nodeKey(id)
	}
	vals, err := c.client.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("status: read nodes: %w", err)
	}
	nodes := make([]Node, 0, len(vals))
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // expired between the two calls
		}
		var n Node
		if err := json.Unmarshal([]byte(s), &n); err == nil {
			nodes = append(nodes, n)
		}
	}
	sortNodes(nodes)
	return nodes, nil
}
