package gateway

import (
	"cmp"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// frameWriter is the write side of one WebSocket connection, shared by the
// gateway's two WebSocket sessions (wsTransport under the library's engine
// socket, leanSession in place of it):
//
//   - Writes need no goroutine of their own. A frame is appended to the
//     connection's pending list; whichever goroutine finds the connection
//     idle writes the list at once with one non-blocking sendmsg (writev
//     off Linux). Only when the kernel's socket buffer is full does a
//     goroutine stay behind to finish the rest with blocking writes. An idle connection holds no
//     writer goroutine and no queue.
//   - A broadcast reaches a recipient without the engine's per-packet path:
//     the fan-out adapter (fanout.go) frames the event once and hands the
//     same bytes to every recipient's queue (queueFrames), then flushes the
//     idle ones in parallel.
//   - A client that lets more than maxPendingBytes pile up unread is
//     disconnected: it cannot hold the process's memory.
//
// Frames are written straight to the connection, one writer at a time;
// per-message compression is off.
type frameWriter struct {
	conn net.Conn
	raw  syscall.RawConn // nil when conn has no file descriptor
	// failed is told, once, that a write failed (errSlowClient included);
	// the connection is already marked closed. closeConn closes it.
	failed    func(error)
	closeConn func()
	// writeTimeout bounds one blocking write; zero means the writeTimeout
	// constant (tests set a shorter one).
	writeTimeout time.Duration
	// onLimit, when set, is told once per connection the bound a client
	// that does not read was disconnected by (LimitWSBuffer,
	// LimitWSWriteTimeout).
	onLimit func(limit string)

	mu           sync.Mutex
	pending      net.Buffers // frames queued and not yet written, in order
	pendingBytes int
	spare        net.Buffers // the previous batch's array, reused
	writing      bool        // a goroutine owns the write side
	closing      bool        // close the connection once pending is written
	closed       bool        // the connection is closed: frames are dropped
	linger       bool        // the server closes with input likely unread (lean sessions' closeWith)
}

// wsWriteCalls counts the process's write system calls to WebSocket
// clients: nonblocking are the sendmsg calls of flush, blocking the writes
// of writeBlocking (a client whose socket buffer was full). With the
// deliveries counter it gives frames per write, what coalescing saves.
var wsWriteCalls struct{ nonblocking, blocking atomic.Uint64 }

// maxPendingBytes bounds what a connection may have queued and unwritten.
const maxPendingBytes = 8 << 20

// writeTimeout bounds one blocking write to a client that does not read.
const writeTimeout = 10 * time.Second

// errSlowClient closes a connection whose unread backlog passed
// maxPendingBytes.
var errSlowClient = errors.New("gateway: client reads too slowly, more than 8 MiB queued")

// init sets the connection; failed and closeConn must be set too.
func (w *frameWriter) init(conn net.Conn) {
	w.conn = conn
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			w.raw = raw
		}
	}
}

// send queues frames and writes them unless another goroutine is writing.
func (w *frameWriter) send(frames ...[]byte) {
	if w.queueFrames(frames...) {
		w.flush()
	}
}

// queueFrames appends frames to the pending list. It reports true when
// the caller now owns the write side and must call flush.
func (w *frameWriter) queueFrames(frames ...[]byte) (mustFlush bool) {
	w.mu.Lock()
	if w.closed || w.closing {
		w.mu.Unlock()
		return false
	}
	for _, f := range frames {
		w.pending = append(w.pending, f)
		w.pendingBytes += len(f)
	}
	if w.pendingBytes > maxPendingBytes {
		w.mu.Unlock()
		w.writeFailed(errSlowClient)
		return false
	}
	mustFlush = !w.writing
	w.writing = true
	w.mu.Unlock()
	return mustFlush
}

// takeBatch hands the owner of the write side the pending frames, or
// releases the write side when there are none (closing the connection
// when a close was waiting for the writes). written, the batch the owner
// just wrote (nil if none), is kept for the next batch's array: one lock
// per batch for both.
func (w *frameWriter) takeBatch(written net.Buffers) (net.Buffers, bool) {
	if written != nil {
		clear(written[:cap(written)]) // drop the frames so a finished broadcast can be freed
	}
	w.mu.Lock()
	if written != nil && w.spare == nil && cap(written) <= 64 {
		w.spare = written[:0]
	}
	batch := w.pending
	if len(batch) == 0 || w.closed {
		w.writing = false
		closeNow := w.closing && !w.closed
		if closeNow {
			w.closed = true
		}
		if w.closed {
			w.pending, w.spare = nil, nil
		} else if cap(w.pending) == 0 {
			// The next frame is appended to the array just written:
			// an idle connection keeps one array, and a connection
			// written one frame at a time allocates none.
			w.pending, w.spare = w.spare, nil
		}
		w.mu.Unlock()
		if closeNow {
			w.closeConn()
		}
		return nil, false
	}
	w.pending = w.spare[:0]
	w.spare = nil
	w.pendingBytes = 0
	w.mu.Unlock()
	return batch, true
}

// flush writes the pending frames without ever blocking: when the socket
// buffer fills, the rest goes to writeBlocking on a goroutine of its own.
// Only the owner of the write side calls it.
func (w *frameWriter) flush() {
	batch, ok := w.takeBatch(nil)
	for ok {
		rest, err := w.tryWrite(batch)
		if err != nil {
			w.writeFailed(err)
			return
		}
		if len(rest) > 0 {
			go w.writeBlocking(rest)
			return
		}
		batch, ok = w.takeBatch(batch)
	}
}

// writeBlocking finishes rest and then every batch queued meanwhile, with
// blocking writes bounded by writeTimeout, then releases the write side.
func (w *frameWriter) writeBlocking(rest net.Buffers) {
	for {
		_ = w.conn.SetWriteDeadline(time.Now().Add(cmp.Or(w.writeTimeout, writeTimeout)))
		wsWriteCalls.blocking.Add(1)
		_, err := rest.WriteTo(w.conn)
		_ = w.conn.SetWriteDeadline(time.Time{})
		if err != nil {
			w.writeFailed(err)
			return
		}
		batch, ok := w.takeBatch(nil)
		if !ok {
			return
		}
		rest = batch
	}
}

// tryWrite writes as much of batch as the socket takes now and returns
// what is left. Without a file descriptor it returns batch unwritten.
func (w *frameWriter) tryWrite(batch net.Buffers) (net.Buffers, error) {
	if w.raw == nil {
		return batch, nil
	}
	for len(batch) > 0 {
		chunk := batch
		if len(chunk) > maxIovecs {
			chunk = chunk[:maxIovecs]
		}
		op := rawWrites.Get().(*rawWrite)
		op.chunk = chunk
		err := w.raw.Write(op.fn)
		n, werr := op.n, op.err
		op.chunk, op.n, op.err = nil, 0, nil
		rawWrites.Put(op)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			batch = consume(batch, n)
		}
		if werr == unix.EAGAIN {
			return batch, nil
		}
		if werr != nil {
			return nil, werr
		}
	}
	return nil, nil
}

// rawWrite is one nonblocking write through RawConn.Write. It is pooled
// with its callback bound once: a closure per write would put the
// callback and its results on the heap (three allocations per delivery).
type rawWrite struct {
	chunk net.Buffers
	n     int
	err   error
	fn    func(fd uintptr) bool // op.write
}

var rawWrites = sync.Pool{New: func() any {
	op := &rawWrite{}
	op.fn = op.write
	return op
}}

// write is RawConn.Write's callback: one sendmsg of chunk, retried on
// EINTR; true, since EAGAIN is for the caller to handle.
func (op *rawWrite) write(fd uintptr) bool {
	for {
		wsWriteCalls.nonblocking.Add(1)
		op.n, op.err = writeFrames(int(fd), op.chunk)
		if op.err != unix.EINTR {
			return true
		}
	}
}

// maxIovecs is Linux's IOV_MAX: the most buffers one sendmsg or writev takes.
const maxIovecs = 1024

// consume drops the first n written bytes of bufs.
func consume(bufs net.Buffers, n int) net.Buffers {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs[0] = nil
		bufs = bufs[1:]
	}
	if n > 0 && len(bufs) > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}

// writeFailed drops what is pending, closes the connection and tells the
// session.
func (w *frameWriter) writeFailed(err error) {
	w.mu.Lock()
	already := w.closed
	w.closed = true
	w.writing = false
	clear(w.pending)
	w.pending, w.pendingBytes, w.spare = nil, 0, nil
	w.mu.Unlock()
	// Two senders can both find the backlog past the bound: the limit is
	// counted once, by the failure that closed the connection.
	if !already && w.onLimit != nil {
		switch {
		case errors.Is(err, errSlowClient):
			w.onLimit(LimitWSBuffer)
		case errors.Is(err, os.ErrDeadlineExceeded):
			w.onLimit(LimitWSWriteTimeout)
		}
	}
	if already && !errors.Is(err, errSlowClient) {
		return
	}
	w.failed(err)
}

// lingerOnClose marks the connection as closed by the server while the
// client may still be sending (closeConn reads it).
func (w *frameWriter) lingerOnClose() {
	w.mu.Lock()
	w.linger = true
	w.mu.Unlock()
}

// lingers reports whether lingerOnClose was called.
func (w *frameWriter) lingers() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.linger
}

// closeAfterWrites refuses further frames and closes the connection now
// when no write is in progress, else lets the writer close it when done
// (within writeTimeout).
func (w *frameWriter) closeAfterWrites() {
	w.mu.Lock()
	w.closing = true
	idle := !w.writing && !w.closed
	if idle {
		w.closed = true
		w.pending, w.spare = nil, nil
	}
	w.mu.Unlock()
	if idle {
		w.closeConn()
	}
}

// appendFrame appends an unmasked, final server frame (RFC 6455 5.2).
func appendFrame(dst []byte, opcode byte, payload []byte) []byte {
	return append(appendFrameHeader(dst, opcode, len(payload)), payload...)
}

// appendFrameHeader appends the header of an unmasked, final server frame
// of n payload bytes.
func appendFrameHeader(dst []byte, opcode byte, n int) []byte {
	switch {
	case n <= 125:
		return append(dst, 0x80|opcode, byte(n))
	case n <= 0xffff:
		return append(dst, 0x80|opcode, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|opcode, 127)
		return binary.BigEndian.AppendUint64(dst, uint64(n))
	}
}
