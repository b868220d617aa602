// Command gateway is the Socket.IO-compatible realtime gateway: one port
// serving the Modal webhook, the probes and Socket.IO. `gateway --help`
// lists every setting.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
