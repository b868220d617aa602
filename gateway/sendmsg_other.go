//go:build !linux

package gateway

import (
	"net"

	"golang.org/x/sys/unix"
)

// writeFrames writes bufs to the nonblocking socket fd with one writev
// and returns the bytes written.
func writeFrames(fd int, bufs net.Buffers) (int, error) {
	return unix.Writev(fd, bufs)
}
