package event

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckExtra(t *testing.T) {
	for _, tc := range []struct {
		name string
		want error
	}{
		{"mesh_preview", nil},
		{"quota-warning.v2", nil},
		{"résumé", nil},
		{strings.Repeat("e", MaxExtraBytes), nil},
		{"", ErrMalformed},
		{strings.Repeat("e", MaxExtraBytes+1), ErrMalformed},
		{"bad name", ErrMalformed},
		{"a\nb", ErrMalformed},
		{"tab\there", ErrMalformed},
		{"\xff", ErrMalformed},
		{LogLine, ErrProtocol},
		{JobFailed, ErrProtocol},
		{"disconnect", ErrReserved},
		{"connect_error", ErrReserved},
	} {
		if err := CheckExtra(tc.name); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("CheckExtra(%q) = %v, want %v", tc.name, err, tc.want)
		}
	}
}
