package gateway

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// WebSocket opcodes (RFC 6455 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// Close codes the session sends (RFC 6455 7.4.1).
const (
	closeNormal          = 1000
	closeProtocolError   = 1002
	closeNoStatus        = 1005
	closeInvalidPayload  = 1007
	closeMessageTooBig   = 1009
	closeReplyMaxPayload = 125
)

// readChunk is how much one read takes; a pooled buffer of this size
// exists only while a connection is being read.
const readChunk = 16 << 10

var readBufs = sync.Pool{New: func() any { b := make([]byte, readChunk); return &b }}

// startReading registers the connection with the poller, or, where there
// is none (no epoll, no descriptor), starts a reader goroutine.
func (s *leanSession) startReading() {
	s.fd = -1
	if p := s.engine.poller; p != nil && s.fw.raw != nil && p.add(s) == nil {
		return
	}
	go s.readLoop()
}

// readReady reads what the connection has (the poller saw it readable):
// every complete frame is handled in order on this goroutine, a partial
// one is kept, and the connection is re-armed. Only one goroutine reads a
// session at a time.
func (s *leanSession) readReady() {
	if !s.reading.CompareAndSwap(false, true) {
		return
	}
	buf := readBufs.Get().(*[]byte)
	alive := true
	for alive {
		var n int
		var rerr error
		if err := s.fw.raw.Read(func(fd uintptr) bool {
			for {
				n, rerr = unix.Read(int(fd), *buf)
				if rerr != unix.EINTR {
					return true
				}
			}
		}); err != nil {
			rerr = err
		}
		if rerr == unix.EAGAIN {
			break
		}
		if rerr != nil || n <= 0 {
			s.readFailed(rerr)
			alive = false
			break
		}
		alive = s.consume((*buf)[:n])
		if n < len(*buf) {
			break // the socket is most likely drained; epoll says if not
		}
	}
	readBufs.Put(buf)
	s.reading.Store(false)
	if alive {
		s.engine.poller.rearm(s)
	}
}

// readLoop is the reader goroutine of a session the poller cannot drive.
func (s *leanSession) readLoop() {
	buf := make([]byte, 4<<10)
	for {
		n, err := s.fw.conn.Read(buf)
		if n > 0 && !s.consume(buf[:n]) {
			return
		}
		if err != nil {
			s.readFailed(err)
			return
		}
	}
}

// readFailed ends the session when the connection ends: "transport close"
// for an end of stream or a closed connection, "transport error" else.
func (s *leanSession) readFailed(err error) {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, unix.ECONNRESET) || isClosedErr(err) {
		s.onClose("transport close", nil, false)
		return
	}
	s.onClose("transport error", err, false)
}

// consume handles the frames in data (after the kept partial frame). It
// reports false once the session is closed.
func (s *leanSession) consume(data []byte) bool {
	// data is the pooled read buffer, or the kept partial frame with the
	// new bytes appended (amortised growth for a large message).
	owned := len(s.partial) > 0
	if owned {
		data = append(s.partial, data...)
		s.partial = nil
	}
	for s.state.Load() == stateOpen {
		n, ok := s.frame(data)
		if !ok {
			return false
		}
		if n == 0 {
			switch {
			case len(data) == 0:
			case owned:
				s.partial = data
			default:
				s.partial = append([]byte(nil), data...)
			}
			return true
		}
		data = data[n:]
	}
	return false
}

// frame handles the frame at the head of b and returns its length, or 0
// when b does not hold a whole frame yet. ok is false when the session
// closed (a close frame, a protocol error, an oversized message).
func (s *leanSession) frame(b []byte) (n int, ok bool) {
	if len(b) < 2 {
		return 0, true
	}
	fin, rsv, op := b[0]&0x80 != 0, b[0]&0x70, b[0]&0x0f
	masked, length, h := b[1]&0x80 != 0, uint64(b[1]&0x7f), 2
	switch length {
	case 126:
		if len(b) < 4 {
			return 0, true
		}
		length, h = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, true
		}
		length, h = binary.BigEndian.Uint64(b[2:]), 10
	}
	switch {
	case rsv != 0, !masked: // no extension was negotiated; clients mask
		return 0, s.closeWith(closeProtocolError, errProtocol)
	case op >= opClose && (!fin || length > 125):
		return 0, s.closeWith(closeProtocolError, errProtocol)
	case op < opClose && uint64(len(s.frag))+length > uint64(s.engine.maxPayload):
		return 0, s.closeWith(closeMessageTooBig, errTooBig)
	}
	h += 4
	if uint64(len(b)-h) < length {
		return 0, true
	}
	payload := b[h : h+int(length)]
	mask := b[h-4 : h]
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	n = h + int(length)

	switch op {
	case opText, opBinary:
		if s.fragOp != 0 {
			return 0, s.closeWith(closeProtocolError, errProtocol)
		}
		if !fin {
			s.fragOp, s.frag = op, append([]byte(nil), payload...)
			return n, true
		}
		return n, s.deliver(op, append([]byte(nil), payload...))
	case opContinuation:
		if s.fragOp == 0 {
			return 0, s.closeWith(closeProtocolError, errProtocol)
		}
		s.frag = append(s.frag, payload...)
		if !fin {
			return n, true
		}
		op, msg := s.fragOp, s.frag
		s.fragOp, s.frag = 0, nil
		return n, s.deliver(op, msg)
	case opPing:
		s.fw.send(appendFrame(nil, opPong, payload))
		return n, true
	case opPong:
		return n, true
	case opClose:
		return 0, s.onCloseFrame(payload)
	default:
		return 0, s.closeWith(closeProtocolError, errProtocol)
	}
}

var (
	errProtocol       = errors.New("gateway: websocket protocol error")
	errTooBig         = errors.New("gateway: websocket message over the size limit")
	errInvalidPayload = errors.New("gateway: websocket text message is not UTF-8")
)

// deliver hands a complete message to the Engine.IO layer; a text message
// must be UTF-8 (RFC 6455 8.1), else the connection closes with 1007.
func (s *leanSession) deliver(op byte, msg []byte) bool {
	if op == opText && !utf8.Valid(msg) {
		return s.closeWith(closeInvalidPayload, errInvalidPayload)
	}
	s.onMessage(op, msg)
	return s.state.Load() == stateOpen
}

// onCloseFrame answers the client's close frame with its code, as gorilla
// does, and ends the session ("transport close").
func (s *leanSession) onCloseFrame(payload []byte) bool {
	code := closeNoStatus
	switch {
	case len(payload) == 1:
		return s.closeWith(closeProtocolError, errProtocol)
	case len(payload) >= 2:
		code = int(binary.BigEndian.Uint16(payload))
		if !validCloseCode(code) || !utf8.Valid(payload[2:]) {
			return s.closeWith(closeProtocolError, errProtocol)
		}
	}
	var reply []byte
	if code != closeNoStatus {
		reply = binary.BigEndian.AppendUint16(nil, uint16(code))
	}
	s.fw.send(appendFrame(nil, opClose, reply))
	s.onClose("transport close", nil, true)
	return false
}

// validCloseCode reports whether a client may send code (RFC 6455 7.4).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011:
		return true
	default:
		return code >= 3000 && code <= 4999
	}
}

// closeWith sends a close frame with code and ends the session with
// "transport error" (the library's reason for a read error). It returns
// false, for the read path.
func (s *leanSession) closeWith(code int, err error) bool {
	s.fw.lingerOnClose()
	s.fw.send(appendFrame(nil, opClose, binary.BigEndian.AppendUint16(nil, uint16(code))))
	s.onClose("transport error", err, true)
	return false
}
