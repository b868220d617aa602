// Package procstat reads a process's CPU time and resident memory from
// /proc (Linux only).
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clkTck is USER_HZ; 100 on every Linux this harness runs on.
const clkTck = 100

// Sample is one reading of a process.
type Sample struct {
	At     time.Time
	CPU    time.Duration // utime + stime, all threads
	RSS    int64         // bytes (VmRSS)
	HWM    int64         // bytes (VmHWM, peak RSS)
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
	for _, pid := range g {
		s, err := Read(pid)
		if err != nil {
			return sum, err
		}
		sum.CPU += s.CPU
		sum.RSS += s.RSS
		sum.HWM += s.HWM
		sum.Thread += s.Thread
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
func Between(a, b Sample) Window {
	w := Window{Seconds: b.At.Sub(a.At).Seconds(), CPUSeconds: (b.CPU - a.CPU).Seconds()}
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
