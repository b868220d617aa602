package gateway

import (
	"log/slog"
	"reflect"
	"sync"

	"github.com/zishang520/socket.io/v3/pkg/types"
)

// leanEmitter is a lean session's types.EventEmitter: the listeners in one
// slice under a mutex. The library's emitter keeps a concurrent map of
// concurrent slices per emitter, about 3 KiB for the seven listeners a
// session gets (the Socket.IO client's, the gate's, the limits', the
// engine's); this one holds them in a few hundred bytes. Semantics are the
// library's: listeners run in registration order, synchronously; a once
// listener is removed before it runs; RemoveListener matches by function
// pointer; a panicking listener is recovered and logged.
type leanEmitter struct {
	mu        sync.Mutex
	listeners []leanListener
}

type leanListener struct {
	evt  types.EventName
	fn   types.EventListener
	once bool
}

var _ types.EventEmitter = (*leanEmitter)(nil)

// sessionListeners is the capacity of a session's first listener slice:
// the seven listeners a session gets fit without growing it.
const sessionListeners = 8

func (e *leanEmitter) add(evt types.EventName, once bool, fns []types.EventListener) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.listeners == nil {
		e.listeners = make([]leanListener, 0, sessionListeners)
	}
	for _, fn := range fns {
		if fn != nil {
			e.listeners = append(e.listeners, leanListener{evt: evt, fn: fn, once: once})
		}
	}
	return nil
}

// AddListener registers listeners for evt.
func (e *leanEmitter) AddListener(evt types.EventName, fns ...types.EventListener) error {
	return e.add(evt, false, fns)
}

// On registers listeners for evt.
func (e *leanEmitter) On(evt types.EventName, fns ...types.EventListener) error {
	return e.add(evt, false, fns)
}

// Once registers listeners that run at the next evt only.
func (e *leanEmitter) Once(evt types.EventName, fns ...types.EventListener) error {
	return e.add(evt, true, fns)
}

// Emit calls evt's listeners with args.
func (e *leanEmitter) Emit(evt types.EventName, args ...any) {
	var buf [8]types.EventListener
	fns := buf[:0]
	e.mu.Lock()
	kept := e.listeners[:0]
	for _, l := range e.listeners {
		if l.evt == evt {
			fns = append(fns, l.fn)
			if l.once {
				continue
			}
		}
		kept = append(kept, l)
	}
	clear(e.listeners[len(kept):])
	e.listeners = kept
	e.mu.Unlock()
	for _, fn := range fns {
		callListener(evt, fn, args)
	}
}

func callListener(evt types.EventName, fn types.EventListener, args []any) {
	defer func() {
		if r := recover(); r != nil {
			slog.Error("session event listener panicked", slog.String("event", string(evt)), slog.Any("panic", r))
		}
	}()
	fn(args...)
}

// EventNames lists the events with listeners.
func (e *leanEmitter) EventNames() []types.EventName {
	e.mu.Lock()
	defer e.mu.Unlock()
	var names []types.EventName
	seen := map[types.EventName]bool{}
	for _, l := range e.listeners {
		if !seen[l.evt] {
			seen[l.evt] = true
			names = append(names, l.evt)
		}
	}
	return names
}

// ListenerCount counts evt's listeners.
func (e *leanEmitter) ListenerCount(evt types.EventName) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, l := range e.listeners {
		if l.evt == evt {
			n++
		}
	}
	return n
}

// Listeners returns a copy of evt's listeners.
func (e *leanEmitter) Listeners(evt types.EventName) []types.EventListener {
	e.mu.Lock()
	defer e.mu.Unlock()
	var fns []types.EventListener
	for _, l := range e.listeners {
		if l.evt == evt {
			fns = append(fns, l.fn)
		}
	}
	return fns
}

// RemoveListener removes the first listener of evt with fn's function
// pointer.
func (e *leanEmitter) RemoveListener(evt types.EventName, fn types.EventListener) bool {
	if fn == nil {
		return false
	}
	ptr := reflect.ValueOf(fn).Pointer()
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, l := range e.listeners {
		if l.evt == evt && reflect.ValueOf(l.fn).Pointer() == ptr {
			e.listeners = append(e.listeners[:i], e.listeners[i+1:]...)
			e.listeners[:len(e.listeners)+1][len(e.listeners)] = leanListener{}
			return true
		}
	}
	return false
}

// RemoveAllListeners removes evt's listeners.
func (e *leanEmitter) RemoveAllListeners(evt types.EventName) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	kept := e.listeners[:0]
	for _, l := range e.listeners {
		if l.evt != evt {
			kept = append(kept, l)
		}
	}
	found := len(kept) < len(e.listeners)
	clear(e.listeners[len(kept):])
	e.listeners = kept
	return found
}

// Clear removes every listener.
func (e *leanEmitter) Clear() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.listeners = nil
}

// Len counts the events with listeners.
func (e *leanEmitter) Len() int { return len(e.EventNames()) }
