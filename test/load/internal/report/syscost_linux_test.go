package report

import (
	"testing"
	"time"
)

// The probe runs and gives positive costs (no bound on their size: it
// depends on the host).
func TestMeasureSyscallCost(t *testing.T) {
	c, err := MeasureSyscallCost(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c.WriteNs <= 0 || c.WritevPerBufferNs <= 0 || c.Rounds != syscostRounds {
		t.Fatalf("syscall cost %+v", c)
	}
	if c.BufferBytes != 128 || c.WritevBuffers != 16 {
		t.Fatalf("sizes %+v, want 128-byte buffers, 16 per writev", c)
	}
	t.Logf("write(128 B) %.0f ns/call, writev(16 x 128 B) %.0f ns/buffer", c.WriteNs, c.WritevPerBufferNs)
}
