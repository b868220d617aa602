// Package report holds the harness's result files and turns them into
// benchmarks.md and benchmarks.png.
package report

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshgen/gateway/test/load/internal/scenario"
	"github.com/meshgen/gateway/test/load/internal/stats"
)

// ScenarioResults is results/<scenario>.json.
type ScenarioResults struct {
	Scenario    string                    `json:"scenario"`
	LoadgenArgs []string                  `json:"loadgen_args"`
	Runs        int                       `json:"runs"`
	Servers     map[string]*ServerResults `json:"servers"`
}

// ServerResults are one server's runs of a scenario and the spread of
// every figure over them.
type ServerResults struct {
	OK      bool                    `json:"ok"`
	Figures map[string]stats.Spread `json:"figures"`
	Runs    []scenario.Result       `json:"runs"`
}

// Machine is results/machine.json.
type Machine struct {
	CPUs           int               `json:"cpus"`
	CPUModel       string            `json:"cpu_model"`
	MemTotal       string            `json:"mem_total"`
	Kernel         string            `json:"kernel"`
	OpenFilesLimit string            `json:"open_files_limit"`
	PortRange      string            `json:"ip_local_port_range"`
	Versions       map[string]string `json:"versions"`
	GatewayCommit  string            `json:"gateway_commit"`
	Command        string            `json:"command"`
	Commands       []string          `json:"commands,omitempty"` // every bench invocation that wrote into this results directory
	Profile        string            `json:"profile"`
	Started        string            `json:"started"`
	Finished       string            `json:"finished"`
	Notes          []string          `json:"notes,omitempty"`
	// SyscallCost is the CPU cost of small socket writes on this host
	// (MeasureSyscallCost), measured when bench starts: absolute figures
	// move with it between hosts of one CPU family; ratios hold better.
	SyscallCost *SyscallCost `json:"syscall_cost,omitempty"`
}

// SyscallCost is the CPU time of small writes on a loopback TCP connection
// (the writing thread's CPU clock; the loopback delivery into the reader's
// socket runs in that thread too), the median of several rounds.
type SyscallCost struct {
	WriteNs           float64 `json:"write_ns_per_call"`    // write(2) of BufferBytes
	WritevPerBufferNs float64 `json:"writev_ns_per_buffer"` // writev(2) of WritevBuffers buffers of BufferBytes, per buffer
	BufferBytes       int     `json:"buffer_bytes"`         // 128
	WritevBuffers     int     `json:"writev_buffers"`       // 16
	Conns             int     `json:"conns"`                // connections the calls go round-robin over
	Rounds            int     `json:"rounds"`               // rounds of each kind measured
	Error             string  `json:"error,omitempty"`      // why it is missing or partial
}

func out(name string, args ...string) string {
	b, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return "unavailable"
	}
	return strings.TrimSpace(string(b))
}

func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// CollectMachine describes this machine and the software under test.
func CollectMachine(repoDir, moduleDir string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Versions: map[string]string{}}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	m.MemTotal = procField("/proc/meminfo", "MemTotal")
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		m.PortRange = strings.Join(strings.Fields(string(b)), "-")
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		m.OpenFilesLimit = itoa(int(rl.Cur)) + " (hard " + itoa(int(rl.Max)) + ")"
	}
	m.Versions["go"] = out("go", "version")
	m.Versions["node"] = out("node", "--version")
	m.Versions["python"] = out("/usr/bin/python3", "--version")
	var pkg struct {
		Version string `json:"version"`
	}
	if b, err := os.ReadFile(filepath.Join(moduleDir, "peers/node/node_modules/socket.io/package.json")); err == nil && json.Unmarshal(b, &pkg) == nil {
		m.Versions["socket.io (node)"] = pkg.Version
	}
	for _, deb := range []string{"python3-flask-socketio", "python3-socketio", "python3-engineio", "python3-eventlet", "python3-flask"} {
		m.Versions[deb] = out("dpkg-query", "-W", "-f=${Version}", deb)
	}
	if b, err := os.ReadFile(filepath.Join(repoDir, "go.mod")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/zishang520/socket.io/servers/socket/v3" {
				m.Versions["zishang520/socket.io (gateway)"] = f[1]
			}
		}
	}
	commit := out("git", "-C", repoDir, "rev-parse", "--short", "HEAD")
	if s := out("git", "-C", repoDir, "status", "--porcelain", "--untracked-files=no"); s != "" && s != "unavailable" {
		commit += " (with uncommitted changes)"
	}
	m.GatewayCommit = commit
	sc, err := MeasureSyscallCost(time.Second)
	if err != nil {
		sc.Error = err.Error()
	}
	m.SyscallCost = &sc
	return m
}

func itoa(n int) string { return strconv.Itoa(n) }
