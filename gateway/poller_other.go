//go:build !linux

package gateway

import (
	"errors"
	"net"
)

// poller is Linux's epoll (poller_linux.go); elsewhere every lean session
// reads on a goroutine of its own.
type poller struct{}

func newPoller() *poller                 { return nil }
func (p *poller) add(*leanSession) error { return errors.New("gateway: no epoll") }
func (p *poller) rearm(*leanSession)     {}
func (p *poller) remove(*leanSession)    {}
func isClosedErr(err error) bool         { return errors.Is(err, net.ErrClosed) }
