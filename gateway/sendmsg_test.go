package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestWriteFrames writes batches of 1, 16 (the stack array) and 40 (a
// heap array) buffers to a nonblocking socket pair and reads back the
// bytes in order; then fills the socket and expects EAGAIN with nothing
// written, the signal tryWrite hands to a blocking writer.
func TestWriteFrames(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	for _, count := range []int{1, 16, 40} {
		var bufs net.Buffers
		var want []byte
		for i := range count {
			b := []byte(fmt.Sprintf("frame-%d-of-%d;", i, count))
			bufs = append(bufs, b)
			want = append(want, b...)
		}
		n, err := writeFrames(fds[0], bufs)
		if err != nil || n != len(want) {
			t.Fatalf("%d buffers: wrote %d, %v; want %d", count, n, err, len(want))
		}
		got := make([]byte, len(want)+1)
		r, err := unix.Read(fds[1], got)
		if err != nil || !bytes.Equal(got[:r], want) {
			t.Fatalf("%d buffers: read %q, %v; want %q", count, got[:r], err, want)
		}
	}
	chunk := net.Buffers{make([]byte, 64<<10)}
	for range 1000 {
		_, err = writeFrames(fds[0], chunk)
		if err != nil {
			break
		}
	}
	if !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("a full socket: %v, want EAGAIN", err)
	}
	if n, err := writeFrames(fds[0], net.Buffers{[]byte("x")}); n != 0 || !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("a full socket: wrote %d, %v; want 0, EAGAIN", n, err)
	}
}
