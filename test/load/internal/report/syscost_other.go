//go:build !linux

package report

import (
	"errors"
	"time"
)

// MeasureSyscallCost is Linux-only (the harness reads /proc too).
func MeasureSyscallCost(budget time.Duration) (SyscallCost, error) {
	return SyscallCost{}, errors.New("syscall cost: measured on Linux only")
}
