package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshgen/gateway/config"
	"github.com/meshgen/gateway/publish"
	"github.com/meshgen/gateway/registry"
	"github.com/meshgen/gateway/signature"
	"github.com/meshgen/gateway/webhook"
)

// requestTimeout bounds one request of a command.
const requestTimeout = 30 * time.Second

// maxAnswerBytes bounds the answer a command reads.
const maxAnswerBytes = 1 << 20

// signedPost is one signed request: the body, where it goes, and the
// secrets it is signed with (the first one: Standard Webhooks headers, so a
// gateway with require-timestamp accepts it too).
type signedPost struct {
	url     string
	secrets []string
	envName string // the secret's environment variable, for messages
	body    []byte
}

// send posts p and prints the answer: its status to stderr, its body to
// stdout. A non-2xx answer is exit status 1.
func send(ctx context.Context, opts Options, p signedPost) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(p.body))
	if err != nil {
		return usageError{fmt.Errorf("request to %s: %w", p.url, err)}
	}
	req.Header.Set("Content-Type", "application/json")
	if len(p.secrets) > 0 {
		signature.SignRequest(req.Header, p.secrets[0], p.body, time.Now())
	} else {
		fmt.Fprintf(opts.Stderr, "gateway: %s is not set: sending unsigned (only a development gateway without a secret accepts it)\n", p.envName)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", p.url, err)
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(res.Body, maxAnswerBytes))
	if err != nil {
		return fmt.Errorf("POST %s: read the answer: %w", p.url, err)
	}
	fmt.Fprintf(opts.Stderr, "POST %s: %s\n", p.url, res.Status)
	fmt.Fprintln(opts.Stdout, strings.TrimSpace(string(answer)))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return exitError{ExitFailure}
	}
	return nil
}

// route is a producer endpoint: its path and the config key of its
// secrets.
type route struct{ path, secretKey string }

// postCommand is the RunE of a command that builds a body from its flags
// and posts it to r, signed with the first of the secrets the
// configuration gives.
func postCommand(fs *pflag.FlagSet, opts Options, r route, secrets func(config.Config) []string,
	body func(*cobra.Command, config.Config) ([]byte, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		cfg, err := clientConfig(fs)
		if err != nil {
			return err
		}
		b, err := body(cmd, cfg)
		if err != nil {
			return err
		}
		return send(cmd.Context(), opts, signedPost{
			url:     baseURL(cmd, cfg) + r.path,
			secrets: secrets(cfg), envName: config.EnvName(r.secretKey), body: b,
		})
	}
}

// jsonValue checks that s (a flag's value) is JSON.
func jsonValue(flag, s string) (json.RawMessage, error) {
	if !json.Valid([]byte(s)) {
		return nil, usageError{fmt.Errorf("--%s is not valid JSON: %.60q", flag, s)}
	}
	return json.RawMessage(s), nil
}

// object builds a JSON object in the order of its members, leaving out
// those whose value is nil (an unset flag).
type object []member

type member struct {
	key   string
	value any
}

func (o object) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	for _, m := range o {
		if m.value == nil {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		k, _ := json.Marshal(m.key)
		v, err := json.Marshal(m.value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.key, err)
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// optional is s, or nil when it is empty (left out of an object).
func optional(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func webhookCommand(fs *pflag.FlagSet, opts Options) *cobra.Command {
	wh := &cobra.Command{Use: "webhook", Short: "Send Modal webhooks", Args: cobra.NoArgs}
	cmd := &cobra.Command{
		Use:   "send",
		Short: "Send a Modal webhook signed with MODAL_WEBHOOK_SECRET (its first secret)",
		Example: "  gateway webhook send --job-id j1 --status completed --project 42\n" +
			"  gateway webhook send --job-id j2 --status completed --project 42 --result '{\"s3_output_path\": \"s3://bucket/mesh.msh\"}'\n" +
			"  gateway webhook send --job-id j3 --status failed --project 42 --error 'Meshing failed'",
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.String("job-id", "", "Modal job id (required)")
	f.String("status", "", "completed or failed (required)")
	f.String("project", "", "project_id: the job's project (else the job registry's)")
	f.String("batch", "", "batch_id: the job's batch")
	f.String("result", "", "result, JSON (completed)")
	f.String("error", "", "error message (failed)")
	addURLFlag(cmd)
	_ = cmd.MarkFlagRequired("job-id")
	_ = cmd.MarkFlagRequired("status")
	cmd.MarkFlagsMutuallyExclusive("result", "error")
	cmd.RunE = postCommand(fs, opts, route{webhook.Path, "modal-webhook-secret"},
		func(cfg config.Config) []string { return cfg.ModalWebhookSecrets },
		func(cmd *cobra.Command, _ config.Config) ([]byte, error) { return webhookBody(cmd.Flags()) })
	wh.AddCommand(cmd)
	return wh
}

// webhookBody builds Modal's body from the flags, in Modal's key order.
func webhookBody(f *pflag.FlagSet) ([]byte, error) {
	get := func(name string) string { v, _ := f.GetString(name); return v }
	status := get("status")
	if status != "completed" && status != "failed" {
		return nil, usageError{fmt.Errorf("--status %q: must be completed or failed", status)}
	}
	var result any
	if r := get("result"); r != "" {
		raw, err := jsonValue("result", r)
		if err != nil {
			return nil, err
		}
		result = raw
	} else if status == "completed" {
		result = map[string]bool{"success": true}
	}
	return json.Marshal(object{
		{"job_id", get("job-id")}, {"status", status}, {"result", result}, {"error", optional(get("error"))},
		{"project_id", optional(get("project"))}, {"batch_id", optional(get("batch"))},
	})
}

func publishCommand(fs *pflag.FlagSet, opts Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "publish",
		Short: "Publish one event, or a file of events, signed with GATEWAY_EVENTS_SECRET (its first secret)",
		Example: "  gateway publish --event log_line --project 42 --data '{\"job_id\": \"j1\", \"message\": \"Meshing...\"}'\n" +
			"  gateway publish --event job_progress --batch 7 --data '{\"job_id\": \"j1\", \"progress\": 45, \"status\": \"processing\"}'\n" +
			"  gateway publish --file events.json     # {\"events\": [...]}; - reads standard input",
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.String("event", "", "event name (log_line, job_progress, batch_status, job_completed, job_failed or an extra event)")
	f.String("data", "", "the event's payload, a JSON object")
	f.String("project", "", "project_id: the room project_<id>")
	f.String("batch", "", "batch_id: the room batch_<id>")
	f.String("room", "", "a room by name (extra events)")
	f.String("id", "", "idempotency id: a retry with the same id is delivered once")
	f.String("file", "", `a JSON file holding one event or {"events": [...]}; "-" reads standard input`)
	addURLFlag(cmd)
	cmd.MarkFlagsMutuallyExclusive("file", "event")
	cmd.MarkFlagsOneRequired("file", "event")
	cmd.RunE = postCommand(fs, opts, route{publish.Path, "events-secret"},
		func(cfg config.Config) []string { return cfg.EventsSecrets },
		func(cmd *cobra.Command, cfg config.Config) ([]byte, error) {
			return publishBody(cmd, cfg.EventsMaxBodyBytes)
		})
	return cmd
}

// publishBody is the file's bytes (bounded by the gateway's own limit), or
// one event built from the flags.
func publishBody(cmd *cobra.Command, limit int64) ([]byte, error) {
	f := cmd.Flags()
	get := func(name string) string { v, _ := f.GetString(name); return v }
	if path := get("file"); path != "" {
		var r io.Reader = cmd.InOrStdin()
		if path != "-" {
			file, err := os.Open(path)
			if err != nil {
				return nil, usageError{err}
			}
			defer file.Close()
			r = file
		}
		b, err := io.ReadAll(io.LimitReader(r, limit+1))
		switch {
		case err != nil:
			return nil, usageError{fmt.Errorf("read %s: %w", path, err)}
		case int64(len(b)) > limit:
			return nil, usageError{fmt.Errorf("%s is larger than the gateway accepts (events-max-body-bytes %d)", path, limit)}
		case !json.Valid(b):
			return nil, usageError{fmt.Errorf("%s is not valid JSON", path)}
		}
		return b, nil
	}
	data, err := jsonValue("data", get("data"))
	if err != nil {
		return nil, err
	}
	return json.Marshal(object{
		{"event", get("event")}, {"project_id", optional(get("project"))}, {"batch_id", optional(get("batch"))},
		{"room", optional(get("room"))}, {"id", optional(get("id"))}, {"data", data},
	})
}

func jobsCommand(fs *pflag.FlagSet, opts Options) *cobra.Command {
	jobs := &cobra.Command{Use: "jobs", Short: "Use the job registry", Args: cobra.NoArgs}
	cmd := &cobra.Command{
		Use:   "register",
		Short: "Register a job, or a batch of jobs, signed with GATEWAY_JOBS_SECRET (its first secret)",
		Example: "  gateway jobs register --job-id fc-1 --project 42\n" +
			"  gateway jobs register --batch b7 --project 42 --total 3 --job-id fc-1 --job-id fc-2 --job-id fc-3",
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringArray("job-id", nil, "a job id (repeat for a batch's jobs)")
	f.String("project", "", "project_id of the jobs (required)")
	f.String("batch", "", "batch_id: register the jobs as one batch")
	f.Int("total", 0, "the batch's total number of jobs (default: the jobs given)")
	addURLFlag(cmd)
	_ = cmd.MarkFlagRequired("project")
	cmd.RunE = postCommand(fs, opts, route{registry.Path, "jobs-secret"},
		func(cfg config.Config) []string { return cfg.JobsSecrets },
		func(cmd *cobra.Command, _ config.Config) ([]byte, error) { return jobsBody(cmd.Flags()) })
	jobs.AddCommand(cmd)
	return jobs
}

// jobsBody is one job, or a batch when --batch is given.
func jobsBody(f *pflag.FlagSet) ([]byte, error) {
	ids, _ := f.GetStringArray("job-id")
	project, _ := f.GetString("project")
	batch, _ := f.GetString("batch")
	total, _ := f.GetInt("total")
	if batch == "" {
		if len(ids) != 1 || total != 0 {
			return nil, usageError{errors.New("without --batch give exactly one --job-id (and no --total)")}
		}
		return json.Marshal(object{{"job_id", ids[0]}, {"project_id", project}})
	}
	jobs := make([]object, len(ids))
	for i, id := range ids {
		jobs[i] = object{{"job_id", id}}
	}
	var t any
	if total > 0 {
		t = total
	}
	return json.Marshal(object{{"batch_id", batch}, {"project_id", project}, {"total_jobs", t}, {"jobs", jobs}})
}

// commandFlags builds a command's body from its parsed flags (tests).
type commandFlags struct{ f *pflag.FlagSet }

func (c *commandFlags) webhook() ([]byte, error) { return webhookBody(c.f) }
func (c *commandFlags) jobs() ([]byte, error)    { return jobsBody(c.f) }
