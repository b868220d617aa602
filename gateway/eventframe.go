package gateway

import (
	"encoding/json"

	"github.com/go-json-experiment/json/jsontext"
	ws "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// eventFrame is the WebSocket frame of a bus event's packet (an EVENT of
// data [name, payload] or [name, payload, offset], no acknowledgement id),
// written without the library's encoder: Engine.IO MESSAGE '4', Socket.IO
// EVENT '2', the namespace unless it is "/", then the JSON array. The
// library's encoder runs encoding/json's Marshal over the data, which
// re-validates and compacts the payload on every event (about 8% of the
// CPU at 50k deliveries/s over 100 rooms); the payload here was validated
// once, when it was published (event.Validate, or the Redis entry's
// decode), and is copied as it is. What a client parses is the same; the
// bytes differ only where encoding/json would have escaped <, > and &
// (\u003c...) or dropped insignificant whitespace, as node's socket.io and
// Flask-SocketIO do not either.
//
// ok is false for any other packet, a payload that is not a raw JSON
// value, or a name or offset that is not valid UTF-8: the caller then
// uses the library's encoder.
func eventFrame(p *parser.Packet) (frame []byte, ok bool) {
	if p.Type != parser.EVENT || p.Id != nil || p.Attachments != nil {
		return nil, false
	}
	data, _ := p.Data.([]any)
	if len(data) != 2 && len(data) != 3 {
		return nil, false
	}
	name, ok1 := data[0].(string)
	payload, ok2 := data[1].(json.RawMessage)
	if !ok1 || !ok2 || len(payload) == 0 {
		return nil, false
	}
	offset, withOffset := "", len(data) == 3
	if withOffset {
		var ok3 bool
		if offset, ok3 = data[2].(string); !ok3 {
			return nil, false
		}
	}
	nsp := len(p.Nsp) > 0 && p.Nsp != "/"
	size := 2 + 2 + len(name) + 3 + len(payload) + 1 // 42["name",payload]
	if nsp {
		size += len(p.Nsp) + 1
	}
	if withOffset {
		size += len(offset) + 3
	}
	// The body goes after room for the longest frame header (10 bytes);
	// the header is then written right before it.
	buf := make([]byte, maxFrameHeader, maxFrameHeader+size+8)
	buf = append(buf, '4', byte(parser.EVENT)+'0')
	if nsp {
		buf = append(buf, p.Nsp...)
		buf = append(buf, ',')
	}
	buf = append(buf, '[')
	var err error
	if buf, err = jsontext.AppendQuote(buf, name); err != nil {
		return nil, false
	}
	buf = append(buf, ',')
	buf = append(buf, payload...)
	if withOffset {
		buf = append(buf, ',')
		if buf, err = jsontext.AppendQuote(buf, offset); err != nil {
			return nil, false
		}
	}
	buf = append(buf, ']')
	n := len(buf) - maxFrameHeader
	if n-2 > types.MaxPayloadSize { // the library's bound on the JSON part
		return nil, false
	}
	header := appendFrameHeader(make([]byte, 0, maxFrameHeader), ws.TextMessage, n)
	start := maxFrameHeader - len(header)
	copy(buf[start:], header)
	return buf[start:], true
}

// maxFrameHeader is the longest header of an unmasked server frame.
const maxFrameHeader = 10
