package recovery_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/recovery"
)

// FuzzPlanOffset: the offset and the stored quiet stretch come from the
// network (a client's CONNECT) and the store; whatever they are, Plan
// answers without panicking, and only an offset the backlog holds (or
// its quiet stretch's end) is recovered.
func FuzzPlanOffset(f *testing.F) {
	for _, s := range []string{"5", "0", "", "5-0", "-", "1-", "-1", "99999999999999999999", "18446744073709551615", "3\x00", " 4", "+5", "٣"} {
		f.Add(s, "", "")
	}
	f.Add("2", "2", "9")
	b := recovery.NewBacklog(1<<20, 0)
	for n := 3; n <= 9; n++ {
		b.Append(logLine(strconv.Itoa(n), "r"))
	}
	p := &recovery.Planner{Backlog: b, MaxEvents: 100}
	f.Fuzz(func(t *testing.T, offset, from, to string) {
		r, outcome, err := p.Plan(context.Background(), offset, recovery.Quiet{From: from, To: to}, inRooms("r"))
		if err != nil {
			t.Fatalf("error without a history: %v", err)
		}
		if outcome != recovery.Recovered {
			return
		}
		if !b.Has(offset) {
			t.Fatalf("recovered from %q, which the backlog does not hold", offset)
		}
		if r.Through != offset && r.Through != to {
			t.Fatalf("through %q, neither the offset nor the stretch's end", r.Through)
		}
		if !bus.ValidID(r.Through) {
			t.Fatalf("through %q is not an id", r.Through)
		}
	})
}
