package report

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Sizes of the syscall-cost probe: 128-byte writes, and writev of 16
// such buffers (the shape of a fan-out's small frames, one by one or
// gathered), spread round-robin over 32 connections as a fan-out writes
// one frame to each of its sockets (on one connection, TCP autocorking
// merges back-to-back small writes into few segments: that measures a
// memcpy, not a send).
const (
	syscostBytes    = 128
	syscostBuffers  = 16
	syscostConns    = 32
	syscostRounds   = 8   // measurements of each kind; the median is kept
	syscostAttempts = 24  // rounds tried at most (a round that met a full socket buffer is dropped)
	syscostWrites   = 512 // write calls per round
	syscostWritevs  = 256 // writev calls per round (4,096 buffers)
)

// MeasureSyscallCost measures, over loopback TCP connections to a listener
// that reads and discards, the CPU time (of the writing thread, from
// CLOCK_THREAD_CPUTIME_ID, which includes the loopback delivery the kernel
// runs in that thread) of a 128-byte write(2), per call, and of a
// writev(2) of 16 128-byte buffers, per buffer: the median of 8 rounds of
// 512 writes and 256 writevs, round-robin over 32 connections. It stops
// early when budget has passed (a partial result is returned with an
// error).
func MeasureSyscallCost(budget time.Duration) (SyscallCost, error) {
	c := SyscallCost{BufferBytes: syscostBytes, WritevBuffers: syscostBuffers, Conns: syscostConns}
	deadline := time.Now().Add(budget)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return c, fmt.Errorf("syscall cost: listen: %w", err)
	}
	defer ln.Close()
	var readers sync.WaitGroup
	readers.Go(func() {
		for range syscostConns {
			rc, err := ln.Accept()
			if err != nil {
				return
			}
			readers.Go(func() {
				defer rc.Close()
				_ = rc.SetDeadline(deadline.Add(time.Second))
				_, _ = io.Copy(io.Discard, rc)
			})
		}
	})
	var conns []net.Conn
	var fds []int
	defer func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		for _, conn := range conns {
			conn.Close()
		}
		ln.Close()
		readers.Wait()
	}()
	for range syscostConns {
		conn, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			return c, fmt.Errorf("syscall cost: dial: %w", err)
		}
		conns = append(conns, conn)
		tcp := conn.(*net.TCPConn)
		_ = tcp.SetNoDelay(true)
		_ = tcp.SetWriteBuffer(1 << 20)
		raw, err := tcp.SyscallConn()
		if err != nil {
			return c, fmt.Errorf("syscall cost: %w", err)
		}
		// A duplicate of the socket's descriptor (same open socket, still
		// non-blocking), valid outside Control until closed here.
		var dupErr error
		if err := raw.Control(func(fd uintptr) {
			var d int
			if d, dupErr = syscall.Dup(int(fd)); dupErr == nil {
				fds = append(fds, d)
			}
		}); err != nil || dupErr != nil {
			return c, fmt.Errorf("syscall cost: dup: %w", errors.Join(err, dupErr))
		}
	}

	// The rounds run on one locked thread, so its CPU clock is theirs.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	buf := make([]byte, syscostBytes*syscostBuffers)
	iov := make([]syscall.Iovec, syscostBuffers)
	for i := range iov {
		iov[i].Base = &buf[i*syscostBytes]
		iov[i].SetLen(syscostBytes)
	}
	write := func(fd int) syscall.Errno {
		_, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), syscostBytes)
		return e
	}
	writev := func(fd int) syscall.Errno {
		_, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), syscostBuffers)
		return e
	}
	// round makes calls system calls round-robin over the connections and
	// returns the thread CPU time they took; full is true when a socket
	// buffer was full (EAGAIN): that round does not count.
	round := func(calls int, call func(fd int) syscall.Errno) (d time.Duration, full bool, err error) {
		t0, err := threadCPU()
		if err != nil {
			return 0, false, err
		}
		for i := 0; i < calls; i++ {
			switch e := call(fds[i%len(fds)]); e {
			case 0:
			case syscall.EAGAIN:
				return 0, true, nil
			default:
				return 0, false, e
			}
		}
		t1, err := threadCPU()
		return t1 - t0, false, err
	}

	var perWrite, perBuf []float64
	for a := 0; a < syscostAttempts && min(len(perWrite), len(perBuf)) < syscostRounds && time.Now().Before(deadline); a++ {
		if len(perWrite) < syscostRounds {
			d, full, err := round(syscostWrites, write)
			if err != nil {
				return c, fmt.Errorf("syscall cost: write: %w", err)
			}
			if !full {
				perWrite = append(perWrite, float64(d.Nanoseconds())/syscostWrites)
			}
		}
		if len(perBuf) < syscostRounds {
			d, full, err := round(syscostWritevs, writev)
			if err != nil {
				return c, fmt.Errorf("syscall cost: writev: %w", err)
			}
			if !full {
				perBuf = append(perBuf, float64(d.Nanoseconds())/(syscostWritevs*syscostBuffers))
			}
		}
		// Let the readers drain (they also keep a later round's buffers
		// from filling).
		time.Sleep(time.Millisecond)
	}
	c.Rounds = min(len(perWrite), len(perBuf))
	c.WriteNs = median(perWrite)
	c.WritevPerBufferNs = median(perBuf)
	if c.Rounds < syscostRounds {
		return c, fmt.Errorf("syscall cost: %d of %d rounds within %v and %d attempts", c.Rounds, syscostRounds, budget, syscostAttempts)
	}
	return c, nil
}

// threadCPU is the calling thread's CPU time (user + system).
func threadCPU() (time.Duration, error) {
	const clockThreadCPUTimeID = 3 // CLOCK_THREAD_CPUTIME_ID
	var ts syscall.Timespec
	if _, _, e := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0, fmt.Errorf("clock_gettime(CLOCK_THREAD_CPUTIME_ID): %w", e)
	}
	return time.Duration(ts.Nano()), nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
