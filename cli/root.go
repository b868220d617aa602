package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshgen/gateway/config"
)

// Exit statuses.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Options are what the command line needs from main.
type Options struct {
	// Version and Commit name the build (gateway --version).
	Version, Commit string
	// Stdout and Stderr receive the commands' output.
	Stdout, Stderr io.Writer
	// Serve runs the server with a validated configuration and returns the
	// exit status. Required.
	Serve func(ctx context.Context, cfg config.Config) int
}

// usageError is a usage or configuration error: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitError carries an exit status decided by a command.
type exitError struct{ code int }

func (e exitError) Error() string { return "exit status " + strconv.Itoa(e.code) }

// Execute runs the command line args and returns the exit status.
func Execute(ctx context.Context, args []string, opts Options) int {
	root := newRoot(opts)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var exit exitError
	var usage usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &exit):
		return exit.code
	case config.IsHelp(err):
		return ExitOK
	case errors.As(err, &usage) || isCobraUsage(err):
		fmt.Fprintln(opts.Stderr, "gateway: "+strings.ReplaceAll(err.Error(), "\n", " "))
		return ExitUsage
	default:
		fmt.Fprintln(opts.Stderr, "gateway: "+strings.ReplaceAll(err.Error(), "\n", " "))
		return ExitFailure
	}
}

// isCobraUsage reports the errors cobra itself returns for a bad command
// line (an unknown command, a wrong number of arguments, a missing required
// flag).
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "required flag", "at least one of the flags", "if any flags in the group", "none of the others can be"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// newRoot builds the command tree. The configuration's flags are
// persistent on the root: every command reads the configuration.
func newRoot(opts Options) *cobra.Command {
	fs := config.NewFlagSet("gateway", opts.Stdout)
	root := &cobra.Command{
		Use:   "gateway",
		Short: "Socket.IO-compatible realtime gateway",
		Long: "The realtime gateway: `gateway` (or `gateway serve`) serves Socket.IO, the Modal webhook, the producer APIs,\n" +
			"the probes, /metrics and /status on one port; the other commands drive a running gateway.\n" +
			"Every setting is a flag, an environment variable or a config file key.",
		Args:          cobra.NoArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(opts.Stdout)
	root.SetErr(opts.Stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.CompletionOptions.DisableDefaultCmd = true

	local := pflag.NewFlagSet("server", pflag.ContinueOnError)
	fs.VisitAll(func(f *pflag.Flag) {
		switch f.Name {
		case "check-config", "version":
			local.AddFlag(f)
		default:
			root.PersistentFlags().AddFlag(f)
		}
	})
	root.Flags().AddFlagSet(local)
	root.Flags().SortFlags, root.PersistentFlags().SortFlags = false, false // as the config lists them

	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve (the default command)",
		Args:  cobra.NoArgs,
	}
	serve.Flags().AddFlagSet(local)
	run := func(cmd *cobra.Command, _ []string) error { return runServe(cmd.Context(), fs, opts) }
	root.RunE, serve.RunE = run, run

	root.AddCommand(serve, webhookCommand(fs, opts), publishCommand(fs, opts), jobsCommand(fs, opts), tailCommand(fs, opts), statusCommand(fs, opts))
	return root
}

// runServe is `gateway serve`: --version, --check-config, or the server.
func runServe(ctx context.Context, fs *pflag.FlagSet, opts Options) error {
	if v, _ := fs.GetBool("version"); v {
		fmt.Fprintf(opts.Stdout, "gateway %s (commit %s)\n", opts.Version, opts.Commit)
		return nil
	}
	cfg, err := config.LoadParsed(fs)
	if err != nil {
		return usageError{err}
	}
	if check, _ := fs.GetBool("check-config"); check {
		fmt.Fprintln(opts.Stdout, "gateway: configuration is valid")
		return nil
	}
	if code := opts.Serve(ctx, cfg); code != ExitOK {
		return exitError{code}
	}
	return nil
}

// clientConfig reads the configuration for a client command: the same
// sources as the server, without the checks only a server needs.
func clientConfig(fs *pflag.FlagSet) (config.Config, error) {
	cfg, err := config.Read(fs)
	if err != nil {
		return config.Config{}, usageError{err}
	}
	return cfg, nil
}

// defaultURL is the gateway the configuration describes: its host (or
// loopback when it listens on every interface) and port.
func defaultURL(cfg config.Config) string {
	host := cfg.Host
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(cfg.Port))
}

// baseURL is --url when given, else defaultURL.
func baseURL(cmd *cobra.Command, cfg config.Config) string {
	if u, _ := cmd.Flags().GetString("url"); u != "" {
		return strings.TrimSuffix(u, "/")
	}
	return defaultURL(cfg)
}

// addURLFlag adds --url to cmd.
func addURLFlag(cmd *cobra.Command) {
	cmd.Flags().String("url", "", "base URL of the gateway (default http://127.0.0.1:<port of the configuration>)")
}
