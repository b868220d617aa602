package event

import (
	"encoding/json"
	"unicode/utf8"
)

// ValidUTF8 returns payload with each byte that is not part of valid
// UTF-8 replaced by U+FFFD, as encoding/json's Unmarshal reads it, and
// payload itself, not a copy, when it is valid (nearly always).
//
// A producer's JSON may carry invalid UTF-8 inside its strings: the
// webhook accepts it as encoding/json does (a Modal result is passed
// through as received), and a Redis entry is whatever was written there.
// A client must never get it: a WebSocket text frame must be valid UTF-8,
// and a browser or the ws library fails the connection (1007) on one that
// is not, after which recovery would replay the same event on every
// reconnect. Invalid bytes can only stand inside JSON strings, so the
// replacement keeps the payload valid JSON.
func ValidUTF8(payload json.RawMessage) json.RawMessage {
	if utf8.Valid(payload) {
		return payload
	}
	out := make(json.RawMessage, 0, len(payload)+8)
	for len(payload) > 0 {
		r, size := utf8.DecodeRune(payload)
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, payload[:size]...)
		}
		payload = payload[size:]
	}
	return out
}
