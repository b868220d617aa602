package rooms

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Room name prefixes, as the Flask backend named its rooms.
const (
	ProjectPrefix = "project_"
	BatchPrefix   = "batch_"
)

// DefaultMaxIDLength is the longest id accepted when no limit is configured.
const DefaultMaxIDLength = 128

// MaxIDLengthLimit is the largest id length limit that can be configured.
const MaxIDLengthLimit = 1024

// maxSafeInteger is the largest integer a JSON number carries exactly
// through a float64 (2^53).
const maxSafeInteger = 1 << 53

// Sentinel errors of id validation. ErrMissingID is the only one the client
// protocol reports as "Missing <field>"; the others become "Invalid <field>".
var (
	ErrMissingID = errors.New("rooms: missing id")
	ErrInvalidID = errors.New("rooms: invalid id")
)

// ID is a validated project, batch or job id.
type ID struct {
	// Raw is the id as received (a string or a float64 holding an integer),
	// echoed back to the client unchanged.
	Raw any
	// Key is the id as text, the form rooms are named with.
	Key string
}

// ParseID validates an id from a decoded JSON value. nil and "" are
// missing; strings must be valid UTF-8 without control characters and at
// most maxLen bytes; numbers must be integers of at most 2^53.
func ParseID(v any, maxLen int) (ID, error) {
	if maxLen <= 0 {
		maxLen = DefaultMaxIDLength
	}
	switch id := v.(type) {
	case nil:
		return ID{}, ErrMissingID
	case string:
		if id == "" {
			return ID{}, ErrMissingID
		}
		if len(id) > maxLen {
			return ID{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidID, maxLen)
		}
		if !utf8.ValidString(id) {
			return ID{}, fmt.Errorf("%w: not valid UTF-8", ErrInvalidID)
		}
		for _, r := range id {
			if unicode.IsControl(r) {
				return ID{}, fmt.Errorf("%w: contains control characters", ErrInvalidID)
			}
		}
		return ID{Raw: id, Key: id}, nil
	case float64:
		if math.IsNaN(id) || math.IsInf(id, 0) || id != math.Trunc(id) || math.Abs(id) > maxSafeInteger {
			return ID{}, fmt.Errorf("%w: a number id must be an integer", ErrInvalidID)
		}
		key := strconv.FormatInt(int64(id), 10)
		if len(key) > maxLen {
			return ID{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidID, maxLen)
		}
		return ID{Raw: id, Key: key}, nil
	case int:
		return ParseID(float64(id), maxLen)
	case int64:
		return ParseID(float64(id), maxLen)
	case bool:
		return ID{}, fmt.Errorf("%w: must be a string or an integer, not a boolean", ErrInvalidID)
	case map[string]any:
		return ID{}, fmt.Errorf("%w: must be a string or an integer, not an object", ErrInvalidID)
	case []any:
		return ID{}, fmt.Errorf("%w: must be a string or an integer, not a list", ErrInvalidID)
	default:
		return ID{}, fmt.Errorf("%w: must be a string or an integer", ErrInvalidID)
	}
}

// MarshalJSON encodes the id as received: a string stays a string, a
// number a number. A zero ID encodes as null.
func (id ID) MarshalJSON() ([]byte, error) { return json.Marshal(id.Raw) }

// IsZero reports whether the id is absent (for the omitzero option).
func (id ID) IsZero() bool { return id.Key == "" }

// ProjectRoom names the room of a project: "project_<id>".
func ProjectRoom(id ID) string { return ProjectPrefix + id.Key }

// BatchRoom names the room of a batch: "batch_<id>".
func BatchRoom(id ID) string { return BatchPrefix + id.Key }
