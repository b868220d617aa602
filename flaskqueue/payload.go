package flaskqueue

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
)

// maxPayloadDepth bounds the walks of PayloadJSON and HasBinary, which
// also accept hand-built Messages (encoding/json's own decoder bound).
const maxPayloadDepth = 10000

// PayloadJSON encodes each of m.Data's arguments to JSON, once, in order,
// ready to be sent to Socket.IO clients. Dict keys come out sorted and
// '<', '>' and '&' are not escaped. The returned slices share one buffer.
//
// A []byte anywhere in an argument (a Socket.IO binary attachment) is not
// turned into base64, which would silently change its type for clients:
// PayloadJSON fails with ErrNotJSON and the caller decides (HasBinary tells
// beforehand). NaN and ±Inf floats fail with ErrNotJSON as well.
func (m Message) PayloadJSON() ([]json.RawMessage, error) {
	out := make([]json.RawMessage, len(m.Data))
	if len(m.Data) == 0 {
		return out, nil
	}
	ends := make([]int, len(m.Data))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i, v := range m.Data {
		if err := checkJSON(v, 0); err != nil {
			return nil, fmt.Errorf("%w: argument %d: %s", ErrNotJSON, i, err.Error())
		}
		if err := enc.Encode(v); err != nil {
			return nil, fmt.Errorf("%w: argument %d: %v", ErrNotJSON, i, err)
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
		ends[i] = buf.Len()
	}
	all := buf.Bytes()
	start := 0
	for i, end := range ends {
		out[i] = json.RawMessage(all[start:end:end])
		start = end
	}
	return out, nil
}

// HasBinary reports whether any argument holds a []byte value, which
// PayloadJSON refuses and Socket.IO sends as a binary attachment.
func (m Message) HasBinary() bool {
	for _, v := range m.Data {
		if hasBinary(v, 0) {
			return true
		}
	}
	return false
}

func hasBinary(v any, depth int) bool {
	if depth > maxPayloadDepth {
		return false
	}
	switch x := v.(type) {
	case []byte:
		return true
	case []any:
		for _, e := range x {
			if hasBinary(e, depth+1) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if hasBinary(e, depth+1) {
				return true
			}
		}
	}
	return false
}

type payloadError string

func (e payloadError) Error() string { return string(e) }

// checkJSON finds what json.Marshal would encode unfaithfully (bytes as
// base64) or refuse (NaN, Inf), and bounds the nesting of hand-built
// values (a slice can contain itself).
func checkJSON(v any, depth int) error {
	if depth > maxPayloadDepth {
		return payloadError(fmt.Sprintf("nested deeper than %d", maxPayloadDepth))
	}
	switch x := v.(type) {
	case []byte:
		return payloadError("bytes value (binary attachment)")
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return payloadError(fmt.Sprintf("float %v", x))
		}
	case []any:
		for _, e := range x {
			if err := checkJSON(e, depth+1); err != nil {
				return err
			}
		}
	case map[string]any:
		for _, e := range x {
			if err := checkJSON(e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
