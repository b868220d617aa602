package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller drives the reads of every lean session from one epoll instance
// (the process has one): an idle connection holds no goroutine. Each
// descriptor is armed one-shot; a readable one gets a goroutine
// (leanSession.readReady) that reads what is there, handles the complete
// frames in order and re-arms it, so one session is never read by two
// goroutines and its messages keep their order.
//
// The epoll instance is itself waited on by the runtime's network poller
// (an epoll descriptor is pollable): loop asks it for ready descriptors
// without blocking and parks on the runtime's poller when there are none.
// A blocking epoll_wait would hold a thread in a system call for good,
// which the runtime's monitor (sysmon) keeps checking and taking the
// thread's processor from: on an idle node, as much CPU as the heartbeats.
type poller struct {
	epfd int
	// raw is epfd as an *os.File registered with the runtime's network
	// poller; it keeps the File (and so the descriptor) alive.
	raw syscall.RawConn

	mu    sync.Mutex
	conns map[int]*leanSession
}

var (
	thePoller     *poller
	thePollerOnce sync.Once
)

// newPoller returns the process's poller, nil when epoll is unavailable
// (sessions then read on a goroutine each).
func newPoller() *poller {
	thePollerOnce.Do(func() {
		p, err := openPoller()
		if err != nil {
			slog.Warn("epoll unavailable: a reader goroutine per WebSocket session", slog.Any("error", err))
			return
		}
		thePoller = p
		go thePoller.loop()
	})
	return thePoller
}

// openPoller creates the epoll instance and registers it with the
// runtime's network poller.
func openPoller() (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	// os.NewFile registers a non-blocking descriptor with the runtime's
	// poller (epoll_wait itself ignores the flag).
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("epoll: set non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(fd), "epoll")
	raw, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("epoll: %w", err)
	}
	return &poller{epfd: fd, raw: raw, conns: make(map[int]*leanSession)}, nil
}

const pollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// add registers s's descriptor.
func (p *poller) add(s *leanSession) error {
	var fd int
	if err := s.fw.raw.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns[fd] = s
	s.fd = fd
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: pollEvents, Fd: int32(fd)}); err != nil {
		delete(p.conns, fd)
		s.fd = -1
		return err
	}
	return nil
}

// owns reports whether s's descriptor is still registered as s's (p.mu
// held).
func (p *poller) owns(s *leanSession) bool { return s.fd >= 0 && p.conns[s.fd] == s }

// rearm waits for s's next readable event.
func (p *poller) rearm(s *leanSession) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.owns(s) {
		return
	}
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, s.fd, &unix.EpollEvent{Events: pollEvents, Fd: int32(s.fd)})
}

// remove unregisters s; called before its connection is closed, so the
// descriptor is still s's.
func (p *poller) remove(s *leanSession) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.owns(s) {
		return
	}
	delete(p.conns, s.fd)
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
	s.fd = -1
}

// loop starts a readReady goroutine for every descriptor epoll reports,
// for the life of the process.
func (p *poller) loop() {
	events := make([]unix.EpollEvent, 256)
	var waitErr error
	// wait takes what is ready without blocking; it returns false (the
	// runtime parks the goroutine until epfd is readable again) when that
	// was all: an event that comes after the runtime re-armed its wait
	// (before this call) wakes it, so none is missed.
	wait := func(fd uintptr) bool {
		n, err := unix.EpollWait(int(fd), events, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				return true
			}
			waitErr = err
			return true
		}
		p.dispatch(events[:n])
		return n == len(events)
	}
	for {
		if err := p.raw.Read(wait); err != nil {
			slog.Error("epoll: WebSocket reads stop", slog.Any("error", err))
			return
		}
		if waitErr != nil {
			slog.Error("epoll_wait failed: WebSocket reads stop", slog.Any("error", waitErr))
			return
		}
	}
}

// dispatch starts the reads of the sessions whose descriptors are ready.
func (p *poller) dispatch(events []unix.EpollEvent) {
	if len(events) == 0 {
		return
	}
	p.mu.Lock()
	for i := range events {
		if s := p.conns[int(events[i].Fd)]; s != nil {
			go s.readReady()
		}
	}
	p.mu.Unlock()
}

// isClosedErr reports whether err is a read on a connection closed here.
func isClosedErr(err error) bool { return errors.Is(err, net.ErrClosed) }
