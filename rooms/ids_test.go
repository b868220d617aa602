package rooms

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParseID(t *testing.T) {
	tests := []struct {
		name    string
		in      any
		wantKey string
		wantErr error
	}{
		{"string", "abc-123", "abc-123", nil},
		{"uuid", "6f1c2b1e-8e4a-4c52-9a51-0d0c2b8e4e11", "6f1c2b1e-8e4a-4c52-9a51-0d0c2b8e4e11", nil},
		{"unicode", "projét_Ω", "projét_Ω", nil},
		{"integer", float64(42), "42", nil},
		{"zero", float64(0), "0", nil},
		{"negative", float64(-7), "-7", nil},
		{"largest safe integer", float64(1 << 53), "9007199254740992", nil},
		{"go int", 42, "42", nil},
		{"max length", strings.Repeat("a", 128), strings.Repeat("a", 128), nil},
		{"nil", nil, "", ErrMissingID},
		{"empty", "", "", ErrMissingID},
		{"too long", strings.Repeat("a", 129), "", ErrInvalidID},
		{"newline", "a\nb", "", ErrInvalidID},
		{"nul", "a\x00b", "", ErrInvalidID},
		{"escape", "a\x1b[31m", "", ErrInvalidID},
		{"del", "a\x7f", "", ErrInvalidID},
		{"invalid utf8", "a\xffb", "", ErrInvalidID},
		{"fraction", 4.5, "", ErrInvalidID},
		{"unsafe integer", float64(1<<53) * 4, "", ErrInvalidID},
		{"nan", math.NaN(), "", ErrInvalidID},
		{"inf", math.Inf(1), "", ErrInvalidID},
		{"bool", true, "", ErrInvalidID},
		{"object", map[string]any{"id": "x"}, "", ErrInvalidID},
		{"list", []any{"x"}, "", ErrInvalidID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := ParseID(tc.in, 128)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ParseID(%#v) error = %v, want %v", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseID(%#v) = %v", tc.in, err)
			}
			if id.Key != tc.wantKey {
				t.Fatalf("Key = %q, want %q", id.Key, tc.wantKey)
			}
		})
	}
}

func TestRoomNames(t *testing.T) {
	p, _ := ParseID(float64(42), 0)
	b, _ := ParseID("b-1", 0)
	if got := ProjectRoom(p); got != "project_42" {
		t.Errorf("ProjectRoom = %q", got)
	}
	if got := BatchRoom(b); got != "batch_b-1" {
		t.Errorf("BatchRoom = %q", got)
	}
	// A string id and a number id with the same text share a room, as
	// Flask's f"project_{id}" did.
	s, _ := ParseID("42", 0)
	if ProjectRoom(s) != ProjectRoom(p) {
		t.Errorf("string and number ids differ: %q vs %q", ProjectRoom(s), ProjectRoom(p))
	}
}
