package validate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// GatewayModule is the module path of the gateway's own go.mod, used to find
// the repository root above this module.
const GatewayModule = "github.com/meshgen/gateway"

// Setting is one configuration key of the gateway as `gateway --help`
// prints it: a flag whose usage line ends with `(env NAME)` and, usually,
// `(default VALUE)`.
type Setting struct {
	Flag       string // flag name without dashes, e.g. "shutdown-timeout"
	Env        string // environment variable, e.g. "GATEWAY_SHUTDOWN_TIMEOUT"
	Default    string // default value, unquoted; "" when none is printed
	HasDefault bool
}

// Settings are the configuration keys the binary reads, by environment
// variable name.
type Settings map[string]Setting

// Names lists the environment variable names, sorted.
func (s Settings) Names() []string {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

var (
	helpFlagRe    = regexp.MustCompile(`^\s*(?:-[A-Za-z0-9], )?--([a-z0-9][a-z0-9-]*)`)
	helpEnvRe     = regexp.MustCompile(`\(env ([A-Z_][A-Z0-9_]*)\)`)
	helpDefaultRe = regexp.MustCompile(`\(default (.*)\)\s*$`)
)

// ParseHelp reads the settings from the output of `gateway --help`. It fails
// when the output names no environment variable at all, so that a changed
// help format cannot make every name look unknown (or known) silently.
func ParseHelp(help string) (Settings, error) {
	s := Settings{}
	for line := range strings.Lines(help) {
		m := helpFlagRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		env := helpEnvRe.FindStringSubmatch(line)
		if env == nil {
			continue // --config, --version, --help
		}
		st := Setting{Flag: m[1], Env: env[1]}
		if d := helpDefaultRe.FindStringSubmatch(line); d != nil {
			st.HasDefault = true
			st.Default = d[1]
			if u, err := strconv.Unquote(d[1]); err == nil {
				st.Default = u
			}
		}
		if prev, dup := s[st.Env]; dup {
			return nil, fmt.Errorf("help: env %s printed for both --%s and --%s", st.Env, prev.Flag, st.Flag)
		}
		s[st.Env] = st
	}
	if len(s) == 0 {
		return nil, errors.New("help: no line ends with `(env NAME)`; has the format of `gateway --help` changed?")
	}
	return s, nil
}

// Gateway is the binary the manifests are checked against: its settings
// (from --help) and the binary itself, which validates a configuration with
// --check-config.
type Gateway struct {
	Bin      string   // path of the binary
	Source   string   // where it came from, for messages
	Settings Settings // parsed from `gateway --help`
}

// LoadGateway returns the gateway binary to check against. With bin set
// (GATEWAY_BIN) it uses that binary; otherwise it builds ./cmd/gateway of
// the repository at repoRoot into the folder buildDir, which must outlive
// the returned Gateway. It runs --help and parses the settings.
func LoadGateway(ctx context.Context, bin, repoRoot, buildDir string) (*Gateway, error) {
	g := &Gateway{Bin: bin, Source: bin}
	if bin == "" {
		g.Bin = filepath.Join(buildDir, "gateway")
		if err := BuildGateway(ctx, repoRoot, g.Bin, ""); err != nil {
			return nil, err
		}
		g.Source = "go build ./cmd/gateway in " + repoRoot
	}
	out, err := runQuiet(ctx, "", g.Bin, "--help")
	if err != nil {
		return nil, fmt.Errorf("%s --help: %w\n%s", g.Bin, err, out)
	}
	if g.Settings, err = ParseHelp(out); err != nil {
		return nil, err
	}
	return g, nil
}

// ConfigValidMessage is what `gateway --check-config` prints for a valid
// configuration.
const ConfigValidMessage = "gateway: configuration is valid"

// CheckConfig runs `gateway --check-config` with exactly the environment env
// ("NAME=value" entries) plus PATH, nothing else of this process's
// environment, and returns what the binary printed, trimmed. err is non-nil
// when the binary did not exit 0: an *exec.ExitError for a rejected
// configuration (the binary exits 2 and names the bad key in out), or the
// reason it could not run.
func (g *Gateway) CheckConfig(ctx context.Context, env []string) (out string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, g.Bin, "--check-config")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.Dir = os.TempDir() // no config file is read: --config is not given
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err = cmd.Run()
	return strings.TrimSpace(buf.String()), err
}

// BuildGateway compiles ./cmd/gateway of repoRoot to out, statically
// (CGO_ENABLED=0) like the Dockerfile, with ldflags added when not empty.
func BuildGateway(ctx context.Context, repoRoot, out, ldflags string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("building the gateway needs the go command (or set GATEWAY_BIN): %w", err)
	}
	args := []string{"build", "-o", out}
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	args = append(args, "./cmd/gateway")
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = repoRoot
	// This module is not part of the gateway's build, whatever go.work says.
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/gateway in %s: %w\n%s", repoRoot, err, buf.String())
	}
	return nil
}

func runQuiet(ctx context.Context, dir, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// RepoRoot finds the gateway repository above dir: the nearest folder whose
// go.mod declares GatewayModule.
func RepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && modulePath(b) == GatewayModule {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of module %s above %s", GatewayModule, dir)
		}
	}
}

func modulePath(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}
