package ratelog

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestBoundsLinesAndCountsTheRest(t *testing.T) {
	var out strings.Builder
	var left int
	l := New(slog.New(slog.NewTextHandler(&out, nil)), 0.001, 5, func() { left++ })
	for range 1000 {
		l.Log(context.Background(), slog.LevelInfo, "refused")
	}
	if n := strings.Count(out.String(), "\n"); n != 5 {
		t.Fatalf("%d lines for 1000 calls, want the burst of 5", n)
	}
	if left != 995 {
		t.Fatalf("%d left out, want 995", left)
	}
	l.lim.SetLimit(1e9) // the rate allows again
	l.Log(context.Background(), slog.LevelInfo, "refused")
	if !strings.Contains(out.String(), "suppressed=995") {
		t.Fatalf("the next line does not say how many were left out:\n%s", out.String())
	}
	// Disabled levels are neither written nor counted.
	l.Log(context.Background(), slog.LevelDebug, "debug")
	if left != 995 {
		t.Fatal("a disabled level counted as suppressed")
	}
}
