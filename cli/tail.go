package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshgen/gateway/sioclient"
)

func tailCommand(fs *pflag.FlagSet, opts Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Follow rooms as the React app does and print every event as one JSON line, until interrupted",
		Long: "tail connects as a Socket.IO client and, on every (re)connect, subscribes as the React app does inside\n" +
			"on('connect'): subscribe_project, join_batch, subscribe_logs. It prints every event it receives, the\n" +
			"replies included: coloured and aligned on a terminal, one JSON object per line when piped.\n" +
			"It reconnects by itself and stops on SIGINT or SIGTERM.",
		Example: "  gateway tail --project 42\n  gateway tail --project 42 --batch 7 --logs fc-1 | jq .",
		Args:    cobra.NoArgs,
	}
	f := cmd.Flags()
	f.String("project", "", "follow project_<id> (subscribe_project)")
	f.String("batch", "", "follow batch_<id> (join_batch)")
	f.String("logs", "", "follow a job's logs (subscribe_logs, with --project when given)")
	addURLFlag(cmd)
	cmd.MarkFlagsOneRequired("project", "batch", "logs")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := clientConfig(fs)
		if err != nil {
			return err
		}
		get := func(name string) string { v, _ := cmd.Flags().GetString(name); return v }
		t := tailer{out: opts.Stdout, errOut: opts.Stderr, color: isTerminal(opts.Stdout), project: get("project"), batch: get("batch"), logs: get("logs")}
		return t.run(cmd.Context(), baseURL(cmd, cfg))
	}
	return cmd
}

// tailer follows rooms and prints their events.
type tailer struct {
	out, errOut          io.Writer
	color                bool
	project, batch, logs string
}

// subscriptions are what the React app emits inside on('connect').
func (t tailer) subscriptions() []struct {
	event   string
	payload map[string]any
} {
	type sub = struct {
		event   string
		payload map[string]any
	}
	var subs []sub
	if t.project != "" {
		subs = append(subs, sub{"subscribe_project", map[string]any{"project_id": t.project}})
	}
	if t.batch != "" {
		subs = append(subs, sub{"join_batch", map[string]any{"batch_id": t.batch}})
	}
	if t.logs != "" {
		p := map[string]any{"job_id": t.logs}
		if t.project != "" {
			p["project_id"] = t.project
		}
		subs = append(subs, sub{"subscribe_logs", p})
	}
	return subs
}

func (t tailer) run(ctx context.Context, url string) error {
	err := sioclient.Run(ctx, sioclient.Options{
		URL: url,
		OnConnect: func(emit sioclient.Emitter) error {
			var names []string
			for _, s := range t.subscriptions() {
				if err := emit(s.event, s.payload); err != nil {
					return err
				}
				names = append(names, s.event)
			}
			fmt.Fprintf(t.errOut, "gateway: connected to %s; sent %s\n", url, strings.Join(names, ", "))
			return nil
		},
		OnEvent: t.print,
		OnDisconnect: func(err error, retryIn time.Duration) {
			fmt.Fprintf(t.errOut, "gateway: %v; reconnecting in %s\n", err, retryIn)
		},
	})
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil // interrupted: the normal end
	}
	if err != nil {
		return usageError{err}
	}
	return nil
}

// line is one event as tail prints it when piped.
type line struct {
	Time  string          `json:"time"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// print writes one event: a JSON line, or on a terminal the time, the
// event name coloured and padded, and the payload.
func (t tailer) print(name string, data json.RawMessage) {
	now := time.Now()
	if !t.color {
		b, err := json.Marshal(line{Time: now.UTC().Format(time.RFC3339Nano), Event: name, Data: data})
		if err == nil {
			fmt.Fprintln(t.out, string(b))
		}
		return
	}
	fmt.Fprintf(t.out, "\x1b[2m%s\x1b[0m  %s%-20s\x1b[0m %s\n", now.Format("15:04:05.000"), colorOf(name), name, data)
}

// colorOf is the ANSI colour of an event name on a terminal.
func colorOf(name string) string {
	switch name {
	case "job_completed":
		return "\x1b[32m" // green
	case "job_failed", "error":
		return "\x1b[31m" // red
	case "job_progress":
		return "\x1b[36m" // cyan
	case "batch_status":
		return "\x1b[34m" // blue
	case "log_line":
		return "\x1b[0m"
	default: // the replies to the subscriptions
		return "\x1b[2m"
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
