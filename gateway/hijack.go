package gateway

import (
	"bufio"
	"net"
	"net/http"
	"sync"
)

// releaseOnHijack wraps the ResponseWriter of a WebSocket upgrade so that,
// once the connection is hijacked, nothing keeps net/http's response alive.
//
// The engine keeps the upgrade's HttpContext for the whole session (the
// engine socket's Request, the transport's), and with it the
// ResponseWriter: net/http's response and its connection, whose 4 KiB
// bufio reader, 4 KiB bufio writer and 2 KiB response buffer are never
// returned to their pools after a hijack. About 10 KiB of heap per idle
// WebSocket client; after Hijack this writer forgets the response, so all
// of it is garbage once the upgrade returns.
//
// After the hijack the engine writes nothing through the ResponseWriter
// (the connection is the WebSocket's); should it try, the writes fail with
// http.ErrHijacked as net/http's own would.
type hijackReleaser struct {
	mu       sync.Mutex
	w        http.ResponseWriter // nil once hijacked
	hijacked http.Header         // what Header returns after the hijack
}

func releaseOnHijack(w http.ResponseWriter) http.ResponseWriter {
	return &hijackReleaser{w: w}
}

func (r *hijackReleaser) inner() http.ResponseWriter {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.w
}

// Header is the response's header map, an empty one after the hijack.
func (r *hijackReleaser) Header() http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w == nil {
		if r.hijacked == nil {
			r.hijacked = http.Header{}
		}
		return r.hijacked
	}
	return r.w.Header()
}

func (r *hijackReleaser) Write(b []byte) (int, error) {
	if w := r.inner(); w != nil {
		return w.Write(b)
	}
	return 0, http.ErrHijacked
}

func (r *hijackReleaser) WriteHeader(code int) {
	if w := r.inner(); w != nil {
		w.WriteHeader(code)
	}
}

// Flush passes through until the hijack.
func (r *hijackReleaser) Flush() {
	if w := r.inner(); w != nil {
		_ = http.NewResponseController(w).Flush()
	}
}

// Hijack hands over the connection and drops the response.
func (r *hijackReleaser) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w := r.inner()
	if w == nil {
		return nil, nil, http.ErrHijacked
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err == nil {
		r.mu.Lock()
		r.w = nil
		r.mu.Unlock()
	}
	return c, brw, err
}
