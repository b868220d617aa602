package gateway

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
)

// drainStep is the pause between two drain batches before jitter.
const drainStep = 100 * time.Millisecond

// Drain refuses new handshakes and closes every connected client at the
// transport level, in shuffled batches spread evenly (with jitter) across
// window, so that clients reconnect elsewhere a few at a time instead of all
// at once. A transport-level close makes socket.io-client reconnect by
// itself; a Socket.IO DISCONNECT ("io server disconnect") would make it give
// up, so it is never sent. Drain returns when every client is closed or ctx
// ends.
func (s *Server) Drain(ctx context.Context, window time.Duration) {
	s.draining.Store(true)
	var conns []*socket.Socket
	s.io.Sockets().Sockets().Range(func(_ socket.SocketId, sock *socket.Socket) bool {
		conns = append(conns, sock)
		return true
	})
	if len(conns) == 0 {
		return
	}
	rand.Shuffle(len(conns), func(i, j int) { conns[i], conns[j] = conns[j], conns[i] })
	batches := max(1, int(window/drainStep))
	batches = min(batches, len(conns))
	per := (len(conns) + batches - 1) / batches
	step := window / time.Duration(batches)
	s.log.Info("draining clients", slog.Int("clients", len(conns)), slog.Int("batches", batches), slog.Duration("window", window))
	start := time.Now()
	for b := 0; b*per < len(conns); b++ {
		for _, sock := range conns[b*per : min((b+1)*per, len(conns))] {
			sock.Conn().Close(false)
		}
		if (b+1)*per >= len(conns) {
			break
		}
		// Jitter of up to half a step either way keeps batches from lining
		// up with other nodes' or with clients' reconnect timers.
		pause := step + time.Duration(rand.Int64N(int64(step)+1)) - step/2
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			for _, sock := range conns[(b+1)*per:] {
				sock.Conn().Close(false)
			}
			s.log.Warn("drain cut short: remaining clients closed at once", slog.Duration("after", time.Since(start)))
			return
		case <-t.C:
		}
	}
	s.log.Info("drain complete", slog.Duration("took", time.Since(start)))
}

// Draining reports whether Drain was called.
func (s *Server) Draining() bool { return s.draining.Load() }
