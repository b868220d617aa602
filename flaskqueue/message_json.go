package flaskqueue

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

func decodeJSONMessage(b []byte, l Limits) (Message, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return Message{}, fmt.Errorf("%w: json: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Message{}, fmt.Errorf("%w: json: data after the top-level object", ErrMalformed)
	}
	n := jsonNormalizer{lim: l}
	root, err := n.norm(root, 1)
	if err != nil {
		return Message{}, err
	}
	m, ok := root.(map[string]any)
	if !ok { // unreachable: the first byte was '{'
		return Message{}, fmt.Errorf("%w: json holds a %s, want object", ErrMalformed, typeName(root))
	}
	// What is left of MaxBytes bounds the attachments put back in place
	// of placeholders.
	rest := l
	rest.MaxBytes -= n.bytes
	return fromFields(m, FormatJSON, false, rest)
}

// jsonNormalizer converts json.Number values to the types DecodePickle
// produces and enforces Limits on a decoded JSON tree.
type jsonNormalizer struct {
	lim      Limits
	elements int
	bytes    int
}

func (n *jsonNormalizer) norm(v any, depth int) (any, error) {
	switch x := v.(type) {
	case json.Number:
		return jsonNumber(x)
	case string:
		return v, n.chargeBytes(len(x))
	case []any:
		if err := n.enter(len(x), depth); err != nil {
			return nil, err
		}
		for i, e := range x {
			out, err := n.norm(e, depth+1)
			if err != nil {
				return nil, err
			}
			x[i] = out
		}
	case map[string]any:
		if err := n.enter(len(x), depth); err != nil {
			return nil, err
		}
		for k, e := range x {
			if err := n.chargeBytes(len(k)); err != nil {
				return nil, err
			}
			switch e.(type) {
			case json.Number, string, []any, map[string]any:
				out, err := n.norm(e, depth+1)
				if err != nil {
					return nil, err
				}
				if _, isString := e.(string); !isString {
					x[k] = out
				}
			}
		}
	}
	return v, nil
}

func (n *jsonNormalizer) enter(elements, depth int) error {
	if depth > n.lim.MaxDepth {
		return fmt.Errorf("%w: nesting deeper than %d", ErrLimit, n.lim.MaxDepth)
	}
	n.elements += elements
	if n.elements > n.lim.MaxElements {
		return fmt.Errorf("%w: more than %d container elements", ErrLimit, n.lim.MaxElements)
	}
	return nil
}

func (n *jsonNormalizer) chargeBytes(b int) error {
	n.bytes += b
	if n.bytes > n.lim.MaxBytes {
		return fmt.Errorf("%w: more than %d bytes of text", ErrLimit, n.lim.MaxBytes)
	}
	return nil
}

// jsonNumber maps a JSON number like Python's json module: an integer
// literal is an int (int64 or *big.Int), anything with a fraction or an
// exponent a float.
func jsonNumber(num json.Number) (any, error) {
	s := string(num)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '.' || c == 'e' || c == 'E' {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return nil, fmt.Errorf("%w: json: number %q", ErrMalformed, truncate(s))
			}
			return f, nil
		}
	}
	v, err := parseDecimal([]byte(s))
	if err != nil {
		if err == errTooManyDigits {
			return nil, fmt.Errorf("%w: json: integer of more than %d digits", ErrLimit, maxIntDigits)
		}
		return nil, fmt.Errorf("%w: json: number %q", ErrMalformed, truncate(s))
	}
	return v, nil
}

// reconstruct undoes python-socketio's binary deconstruction of emit data:
// [payload, base64-attachment...] where payload holds {"_placeholder":
// true, "num": n} in place of each attachment. An attachment may be
// referenced by several placeholders; every reference counts against
// MaxBytes, as an encoder would send it each time.
func (f fields) reconstruct(data any) (any, error) {
	list, ok := data.([]any)
	if !ok || len(list) == 0 {
		return nil, f.errorf("data", "is %s, want a non-empty list when binary is true", typeName(data))
	}
	attachments := make([][]byte, len(list)-1)
	for i, a := range list[1:] {
		s, ok := a.(string)
		if !ok {
			return nil, f.errorf("data", "attachment %d is %s, want base64 str", i, typeName(a))
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, f.errorf("data", "attachment %d is not base64: %v", i, err)
		}
		attachments[i] = raw
	}
	budget := f.lim.MaxBytes
	return f.placeholders(list[0], attachments, &budget)
}

func (f fields) placeholders(v any, attachments [][]byte, budget *int) (any, error) {
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			out, err := f.placeholders(e, attachments, budget)
			if err != nil {
				return nil, err
			}
			x[i] = out
		}
	case map[string]any:
		if p, _ := x["_placeholder"].(bool); p {
			if num, ok := x["num"]; ok {
				i, ok := num.(int64)
				if !ok || i < 0 || i >= int64(len(attachments)) {
					return nil, f.errorf("data", "has placeholder num %v for %d attachments", num, len(attachments))
				}
				if *budget -= len(attachments[i]); *budget < 0 {
					return nil, fmt.Errorf("%w: too many bytes of binary attachments once placeholders are expanded", ErrLimit)
				}
				return attachments[i], nil
			}
		}
		for k, e := range x {
			out, err := f.placeholders(e, attachments, budget)
			if err != nil {
				return nil, err
			}
			x[k] = out
		}
	}
	return v, nil
}
