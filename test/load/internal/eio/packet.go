// Package eio is a minimal Engine.IO v4 / Socket.IO v5 client for load
// generation: websocket and HTTP long-polling transports, the default
// namespace only, text packets only. It is deliberately small (one read
// goroutine and a few KB per websocket client) so one process can hold
// tens of thousands of clients.
package eio

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// Engine.IO packet types (first byte of a packet).
const (
	eioOpen    = '0'
	eioClose   = '1'
	eioPing    = '2'
	eioPong    = '3'
	eioMessage = '4'
	eioUpgrade = '5'
	eioNoop    = '6'
)

// Socket.IO packet types (second byte of an Engine.IO message).
const (
	sioConnect      = '0'
	sioDisconnect   = '1'
	sioEvent        = '2'
	sioAck          = '3'
	sioConnectError = '4'
)

// Errors a client reports.
var (
	ErrProtocol      = errors.New("eio: protocol error")
	ErrConnectError  = errors.New("eio: server refused the namespace (CONNECT_ERROR)")
	ErrServerClosed  = errors.New("eio: server closed the session")
	ErrServerDisconn = errors.New("eio: server disconnected the socket")
)

// SplitEvent splits the data of a Socket.IO EVENT packet (what follows
// "42", e.g. `["name",{...}]`, possibly preceded by an ack id) into the
// event name and the raw first argument. It does not allocate.
func SplitEvent(data []byte) (name, arg []byte, ok bool) {
	// Skip an optional ack id.
	i := 0
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
	}
	data = data[i:]
	if len(data) < 4 || data[0] != '[' || data[1] != '"' {
		return nil, nil, false
	}
	end := bytes.IndexByte(data[2:], '"')
	if end < 0 {
		return nil, nil, false
	}
	name = data[2 : 2+end]
	rest := data[2+end+1:]
	if len(rest) == 0 {
		return nil, nil, false
	}
	if rest[0] == ']' {
		return name, nil, true
	}
	if rest[0] != ',' || rest[len(rest)-1] != ']' {
		return nil, nil, false
	}
	return name, rest[1 : len(rest)-1], true
}

// FindInt returns the integer value of the first `"key":<int>` in b (key
// given with its quotes and colon, e.g. []byte(`"seq":`)). It does not
// allocate. It tolerates one space after the colon (Python's json.dumps).
func FindInt(b, key []byte) (int64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	if len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	var v int64
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + int64(b[n]-'0')
		n++
	}
	if n == 0 {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

// EncodeEvent returns the text of the Socket.IO EVENT packet
// 42["name",<arg>] for the default namespace; arg is raw JSON.
func EncodeEvent(name string, arg []byte) []byte {
	b := make([]byte, 0, len(name)+len(arg)+8)
	b = append(b, '4', '2', '[')
	b = strconv.AppendQuote(b, name)
	if arg != nil {
		b = append(b, ',')
		b = append(b, arg...)
	}
	return append(b, ']')
}

// LastStringArg returns the last argument of a Socket.IO EVENT packet's
// data (what follows "42", e.g. `["name",{...},"1733-0"]`) when it is a
// JSON string, decoded: the argument socket.io-client v4 keeps as its
// connection state recovery offset. ok is false when the last argument is
// not a string, when the packet carries an ack id (socket.io-client then
// appends its ack function, so the last argument is never a string), or
// when the packet has no argument but the name.
func LastStringArg(data []byte) (s string, ok bool) {
	if len(data) > 0 && data[0] >= '0' && data[0] <= '9' {
		return "", false
	}
	n := len(data)
	if n < 4 || data[0] != '[' || data[n-1] != ']' || data[n-2] != '"' {
		return "", false
	}
	// The closing quote of the last element is data[n-2]; its opening one
	// is the nearest quote before it that is not escaped (an unescaped
	// quote cannot appear inside a JSON string).
	end := n - 2
	start := -1
	for i := end - 1; i >= 1; i-- {
		if data[i] != '"' {
			continue
		}
		bs := 0
		for j := i - 1; j >= 0 && data[j] == '\\'; j-- {
			bs++
		}
		if bs%2 == 0 {
			start = i
			break
		}
	}
	if start < 0 {
		return "", false
	}
	// The string must be a whole element after the name: preceded by a
	// comma (the first element, at data[1], is the event name).
	k := start - 1
	for k >= 0 && (data[k] == ' ' || data[k] == '\t' || data[k] == '\n' || data[k] == '\r') {
		k--
	}
	if k < 0 || data[k] != ',' {
		return "", false
	}
	raw := data[start : end+1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// ConnectPacket returns the Socket.IO CONNECT packet for the default
// namespace as socket.io-client v4 sends it: "40" alone without a session,
// and with the session of an earlier connect `40{"pid":…,"offset":…}`,
// the offset left out (as JSON.stringify leaves out undefined) while the
// client has none.
func ConnectPacket(pid, offset string, hasOffset bool) []byte {
	if pid == "" {
		return []byte("40")
	}
	b := append([]byte(`40{"pid":`), quoteJSON(pid)...)
	if hasOffset {
		b = append(b, `,"offset":`...)
		b = append(b, quoteJSON(offset)...)
	}
	return append(b, '}')
}

func quoteJSON(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}
