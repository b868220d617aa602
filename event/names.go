package event

import (
	"errors"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The server -> client events of the protocol (docs/protocol.md).
const (
	LogLine      = "log_line"
	JobProgress  = "job_progress"
	BatchStatus  = "batch_status"
	JobCompleted = "job_completed"
	JobFailed    = "job_failed"
)

// Protocol lists the five protocol events, whose payloads the producers
// check.
var Protocol = []string{LogLine, JobProgress, BatchStatus, JobCompleted, JobFailed}

// Reserved lists the names a Socket.IO server cannot emit.
var Reserved = []string{"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}

// MaxExtraBytes is the longest extra event name accepted.
const MaxExtraBytes = 64

// Reasons CheckExtra gives.
var (
	ErrMalformed = errors.New("event names are 1-64 bytes of UTF-8 without spaces or control characters")
	ErrProtocol  = errors.New("already a protocol event")
	ErrReserved  = errors.New("reserved by Socket.IO")
)

// CheckExtra checks one name configured as an extra event of the publish
// API: well formed, not a protocol event (those keep their payload checks)
// and not reserved. The error is one of ErrMalformed, ErrProtocol and
// ErrReserved.
func CheckExtra(name string) error {
	switch {
	case name == "" || len(name) > MaxExtraBytes || !utf8.ValidString(name) ||
		strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return ErrMalformed
	case slices.Contains(Protocol, name):
		return ErrProtocol
	case slices.Contains(Reserved, name):
		return ErrReserved
	}
	return nil
}
