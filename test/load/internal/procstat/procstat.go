// Package procstat reads a process's CPU time and resident memory from
// /proc (Linux only).
package procstat

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"
)

// clkTck is USER_HZ; 100 on every Linux this harness runs on.
const clkTck = 100

// Sample is one reading of a process.
type Sample struct {
	At  time.Time
	CPU time.Duration // utime + stime, all threads (10 ms resolution)
	// Tasks is each live thread's time on a CPU (ns resolution, from
	// /proc/PID/task/TID/schedstat), by thread id: Between uses it when no
	// thread ended between two samples (the time of an ended thread is
	// only in CPU). Nil when unreadable.
	Tasks  map[int]time.Duration
	RSS    int64 // bytes (VmRSS)
	HWM    int64 // bytes (VmHWM, peak RSS)
	Thread int
}

// Read samples pid; pid 0 means this process.
func Read(pid int) (Sample, error) {
	p := "self"
	if pid > 0 {
		p = strconv.Itoa(pid)
	}
	s := Sample{At: time.Now()}
	stat, err := os.ReadFile("/proc/" + p + "/stat")
	if err != nil {
		return s, err
	}
	// Fields after the parenthesised command name.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("procstat: bad stat for %s", p)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime 15.
	if len(f) < 13 {
		return s, fmt.Errorf("procstat: short stat for %s", p)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	s.CPU = time.Duration(ut+st) * time.Second / clkTck
	s.Tasks = tasks(p)
	status, err := os.ReadFile("/proc/" + p + "/status")
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "VmRSS":
			s.RSS = kb(v)
		case "VmHWM":
			s.HWM = kb(v)
		case "Threads":
			s.Thread, _ = strconv.Atoi(v)
		}
	}
	return s, nil
}

// tasks reads the CPU time of every thread of process p (a /proc name);
// nil when any read fails.
func tasks(p string) map[int]time.Duration {
	dir := "/proc/" + p + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := make(map[int]time.Duration, len(ents))
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(dir + "/" + e.Name() + "/schedstat")
		if err != nil {
			if os.IsNotExist(err) {
				continue // the thread ended while listed: Between sees it gone
			}
			return nil
		}
		// "time on cpu (ns) time waiting (ns) timeslices"
		f, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
		ns, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil
		}
		out[tid] = time.Duration(ns)
	}
	return out
}

func kb(v string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	return n * 1024
}

// Group samples several processes (the nodes of a cluster) as one.
type Group []int

// Read sums CPU and RSS over the group's processes.
func (g Group) Read() (Sample, error) {
	var sum Sample
	sum.At = time.Now()
	tasks, tasksKnown := map[int]time.Duration{}, true
	for _, pid := range g {
		s, err := Read(pid)
		if err != nil {
			return sum, err
		}
		sum.CPU += s.CPU
		if s.Tasks == nil {
			tasksKnown = false
		}
		maps.Copy(tasks, s.Tasks)
		sum.RSS += s.RSS
		sum.HWM += s.HWM
		sum.Thread += s.Thread
	}
	if tasksKnown {
		sum.Tasks = tasks
	}
	return sum, nil
}

// Window is the CPU use between two samples.
type Window struct {
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUPercent float64 `json:"cpu_percent"`
}

// Between returns the window from a to b.
//
// The CPU time is the threads' scheduler time (ns resolution) when every
// thread of a is still there in b (a thread started in between counts
// whole); otherwise utime + stime, whose 10 ms ticks are a large error on
// a step of a few hundred milliseconds of CPU.
func Between(a, b Sample) Window {
	w := Window{Seconds: b.At.Sub(a.At).Seconds(), CPUSeconds: (b.CPU - a.CPU).Seconds()}
	if precise, ok := taskDelta(a.Tasks, b.Tasks); ok {
		w.CPUSeconds = precise.Seconds()
	}
	if w.Seconds > 0 {
		w.CPUPercent = 100 * w.CPUSeconds / w.Seconds
	}
	return w
}

// System is the machine-wide busy CPU time (all cores) from /proc/stat.
func System() (time.Duration, time.Time) {
	now := time.Now()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, now
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, now
	}
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		// user nice system idle iowait irq softirq steal (guest counted in user).
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / clkTck, now
}

// LoadAvg is the 1-minute load average.
func LoadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// OtherBusy measures, over window, the CPU used on the whole machine by
// processes other than exclude (percent of one core).
func OtherBusy(window time.Duration, exclude Group) float64 {
	sys0, t0 := System()
	ex0, _ := exclude.Read()
	self0, _ := Read(0)
	time.Sleep(window)
	sys1, t1 := System()
	ex1, _ := exclude.Read()
	self1, _ := Read(0)
	wall := t1.Sub(t0).Seconds()
	if wall <= 0 {
		return 0
	}
	other := (sys1 - sys0) - (ex1.CPU - ex0.CPU) - (self1.CPU - self0.CPU)
	return max(0, 100*other.Seconds()/wall)
}

// WaitQuiet waits until other processes use less than threshold percent of
// one core (measured over 2 s windows), at most maxWait. It returns the last
// measurement and how long it waited.
func WaitQuiet(stop <-chan struct{}, threshold float64, maxWait time.Duration, exclude Group) (float64, time.Duration) {
	start := time.Now()
	for {
		o := OtherBusy(2*time.Second, exclude)
		if o < threshold || time.Since(start) >= maxWait {
			return o, time.Since(start)
		}
		select {
		case <-stop:
			return o, time.Since(start)
		default:
		}
	}
}

// taskDelta is the threads' CPU time from a to b; false when either is
// unknown or a thread of a ended.
func taskDelta(a, b map[int]time.Duration) (time.Duration, bool) {
	if a == nil || b == nil {
		return 0, false
	}
	var d time.Duration
	for tid, t := range b {
		d += t - a[tid] // a thread started in between: all of its time
	}
	for tid, t := range a {
		if u, ok := b[tid]; !ok || u < t {
			return 0, false // ended (or its id reused) in between
		}
	}
	return d, true
}
