package gateway

import (
	"errors"
	"log/slog"
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// poller drives the reads of every lean session from one epoll instance
// (the process has one): an idle connection holds no goroutine. Each
// descriptor is armed one-shot; a readable one gets a goroutine
// (leanSession.readReady) that reads what is there, handles the complete
// frames in order and re-arms it, so one session is never read by two
// goroutines and its messages keep their order.
type poller struct {
	epfd int

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
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			slog.Warn("epoll unavailable: a reader goroutine per WebSocket session", slog.Any("error", err))
			return
		}
		thePoller = &poller{epfd: fd, conns: make(map[int]*leanSession)}
		go thePoller.loop()
	})
	return thePoller
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

func (p *poller) loop() {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			slog.Error("epoll_wait failed: WebSocket reads stop", slog.Any("error", err))
			return
		}
		p.mu.Lock()
		for i := range events[:n] {
			if s := p.conns[int(events[i].Fd)]; s != nil {
				go s.readReady()
			}
		}
		p.mu.Unlock()
	}
}

// isClosedErr reports whether err is a read on a connection closed here.
func isClosedErr(err error) bool { return errors.Is(err, net.ErrClosed) }
