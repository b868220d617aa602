package publish

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// The request body is checked once with json.Valid (and utf8.Valid); the
// helpers below then split it into objects, lists and raw values without
// decoding it again, so that every value a sender gives is passed through
// byte for byte (only whitespace outside strings is dropped) and the
// members of an object keep their order.

// member is one member of a JSON object.
type member struct {
	// key is the decoded key.
	key string
	// rawKey is the key as sent, quotes included.
	rawKey []byte
	// value is the raw value, without surrounding whitespace.
	value []byte
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// trimSpace trims JSON whitespace (only; bytes.TrimSpace trims more).
func trimSpace(b []byte) []byte {
	i := skipSpace(b, 0)
	j := len(b)
	for j > i && isSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}

// skipString returns the index just past the string that starts at b[i]
// (a quote), or -1 when it is not terminated.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index just past the value that starts at b[i], or
// -1 when it is cut short.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				if i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	default:
		for i < len(b) && !isSpace(b[i]) && b[i] != ',' && b[i] != '}' && b[i] != ']' {
			i++
		}
		return i
	}
}

// splitObject returns the members of the JSON object b, in order. ok is
// false when b is not a well-formed object.
func splitObject(b []byte) (members []member, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil, skipSpace(b, i+1) == len(b)
	}
	members = make([]member, 0, 8)
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, false
		}
		end := skipString(b, i)
		if end < 0 {
			return nil, false
		}
		rawKey := b[i:end]
		key, ok := knownKeys[string(rawKey[1:len(rawKey)-1])]
		if !ok {
			if key, ok = decodeString(rawKey); !ok {
				return nil, false
			}
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		i = skipSpace(b, i+1)
		vend := skipValue(b, i)
		if vend <= i {
			return nil, false
		}
		members = append(members, member{key: key, rawKey: rawKey, value: b[i:vend]})
		i = skipSpace(b, vend)
		if i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case '}':
			return members, skipSpace(b, i+1) == len(b)
		case ',':
			i = skipSpace(b, i+1)
		default:
			return nil, false
		}
	}
}

// splitArray returns the raw elements of the JSON list b. ok is false when b
// is not a well-formed list.
func splitArray(b []byte) (elems [][]byte, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return nil, skipSpace(b, i+1) == len(b)
	}
	for {
		end := skipValue(b, i)
		if end <= i {
			return nil, false
		}
		elems = append(elems, b[i:end])
		i = skipSpace(b, end)
		if i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case ']':
			return elems, skipSpace(b, i+1) == len(b)
		case ',':
			i = skipSpace(b, i+1)
		default:
			return nil, false
		}
	}
}

// knownKeys are the keys the API looks up, interned: a key sent without
// escapes is then not copied.
var knownKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range eventFields {
		m[k] = k
	}
	m["events"] = "events"
	for _, order := range payloadOrder {
		for _, k := range order {
			m[k] = k
		}
	}
	m["project_id"] = "project_id"
	return m
}()

// decodeString decodes the JSON string raw (quotes included).
func decodeString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// isNull reports whether raw is absent or the JSON null.
func isNull(raw []byte) bool { return len(raw) == 0 || string(raw) == "null" }

func isString(raw []byte) bool { return len(raw) > 0 && raw[0] == '"' }

func isObject(raw []byte) bool { return len(raw) > 0 && raw[0] == '{' }

func isNumber(raw []byte) bool {
	return len(raw) > 0 && (raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'))
}

// number parses the JSON number raw. ok is false for anything else; a
// number too large for a float64 is ±Inf.
func number(raw []byte) (float64, bool) {
	if !isNumber(raw) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	return f, true
}

// value converts a raw scalar into what encoding/json would decode it to
// (string, float64, bool or nil), and objects and lists into typed nil
// values of their kind, for rooms.ParseID.
func value(raw []byte) any {
	if len(raw) == 0 {
		return nil
	}
	switch raw[0] {
	case 'n':
		return nil
	case 't':
		return true
	case 'f':
		return false
	case '"':
		s, _ := decodeString(raw)
		return s
	case '{':
		return map[string]any(nil)
	case '[':
		return []any(nil)
	default:
		f, ok := number(raw)
		if !ok {
			return nil
		}
		return f
	}
}

// appendCompact appends the valid JSON value src to dst without the
// whitespace outside its strings.
func appendCompact(dst, src []byte) []byte {
	if len(src) > 0 && src[0] != '{' && src[0] != '[' {
		return append(dst, src...)
	}
	start := 0
	for i := 0; i < len(src); i++ {
		switch c := src[i]; {
		case c == '"':
			end := skipString(src, i)
			if end < 0 {
				return append(dst, src[start:]...)
			}
			i = end - 1
		case isSpace(c):
			dst = append(dst, src[start:i]...)
			start = i + 1
		}
	}
	return append(dst, src[start:]...)
}
