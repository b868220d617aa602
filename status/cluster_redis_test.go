package status

import (
	"testing"
	"time"

	"github.com/meshgen/gateway/test/redistest"
)

// Nodes announced in a real Redis are listed by id until their
// announcement expires, and an expired one leaves the set too.
func TestRedisClusterAnnounceAndExpiry(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client()
	defer client.Close()
	c := NewRedisCluster(client, "gw-test")
	ctx := t.Context()
	if err := c.Announce(ctx, Node{ID: "b", Ready: true, Clients: map[string]int{"websocket": 3}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.Announce(ctx, Node{ID: "a", Failures: map[string]string{"bus": "redis down"}}, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	nodes, err := c.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0].ID != "a" || nodes[0].Failures["bus"] != "redis down" || nodes[1].ID != "b" || nodes[1].Clients["websocket"] != 3 {
		t.Fatalf("nodes %+v", nodes)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		nodes, err = c.Nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node a did not expire: %+v", nodes)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if nodes[0].ID != "b" {
		t.Fatalf("left %+v, want b", nodes)
	}
	if n, _ := client.ZCard(ctx, "gw-test:nodes").Result(); n != 1 {
		t.Fatalf("the node set holds %d ids, want 1: expired ids are dropped", n)
	}
}

func TestLocalClusterListsThisNode(t *testing.T) {
	c := NewLocalCluster()
	if nodes, _ := c.Nodes(t.Context()); len(nodes) != 0 {
		t.Fatalf("before any announcement: %+v", nodes)
	}
	_ = c.Announce(t.Context(), Node{ID: "solo"}, time.Minute)
	if nodes, _ := c.Nodes(t.Context()); len(nodes) != 1 || nodes[0].ID != "solo" {
		t.Fatalf("nodes %+v", nodes)
	}
}
