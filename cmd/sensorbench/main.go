// Command sensorbench measures what the sensor costs the workloads it
// watches. Each storm runs three ways, alternating in one run: with nothing
// attached ("none"), with empty programs on the same hooks ("floor": the
// price of hooking those events at all) and with the sensor. It prints the
// median speed of each relative to none, the events per second the sensor
// delivered, the events it lost, and the CPU time the sensor process itself
// spent (reading and decoding) per 1000 events.
//
// Storms:
//
//	open        opens of one uninteresting file
//	realistic   opens of the paths a Python server opens: site-packages
//	            modules, /etc, /proc/self, /sys, /dev/null, shared libraries
//	unwatched   a syscall the sensor does not watch (getppid)
//	exec        fork+exec of /bin/true
//	connect     TCP connect + send + close on loopback
//	udp         sendto on an unconnected UDP socket (not in the default set)
//	watched     the same watched model file, opened again and again (the
//	            kernel counts repeats within -repeat-window instead of
//	            reporting them)
//	distinct    watched opens of distinct model files, cycling through -files
//	            of them (every open a new file with -repeat-window 0)
//	relative    opens of a relative path (not in the default set)
//
// Storms run in a child process (this binary re-executed with -worker),
// because the sensor never reports its own process. Run as root:
//
//	go run ./cmd/sensorbench [-rounds 5] [-opens 1000000] [-execs 2000] [-conns 20000]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/runtime"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-worker" {
		os.Exit(worker(os.Args[2], os.Args[3:]))
	}
	rounds := flag.Int("rounds", 5, "alternations of none / floor / sensor (the median is reported)")
	opens := flag.Int("opens", 1_000_000, "open+close calls per open storm")
	execs := flag.Int("execs", 2000, "fork+exec of /bin/true per exec storm")
	conns := flag.Int("conns", 20000, "connect+send+close per connect storm (loopback)")
	datagrams := flag.Int("datagrams", 500_000, "sendto calls per udp storm")
	watched := flag.Int("watched", 200_000, "opens of a watched model file per watched-open storm (0 skips it)")
	realistic := flag.Int("realistic", 500_000, "opens per realistic-paths storm")
	unwatched := flag.Int("unwatched", 2_000_000, "getppid calls per unwatched-syscall storm")
	distinct := flag.Int("distinct", 200_000, "opens per distinct-model-files storm")
	files := flag.Int("files", 2000, "distinct model files the distinct storm cycles through")
	storms := flag.String("storms", "open,realistic,unwatched,exec,connect,watched,distinct",
		"comma-separated storms to run (also: relative, opens of a relative path; udp, sendto on an unconnected socket)")
	repeatWindow := flag.Duration("repeat-window", config.Default().Capture.OpenRepeatWindow.D(),
		"capture.open_repeat_window of the sensor runs (0 reports every open: the watched and distinct storms' worst case)")
	flag.BoolVar(&progStats, "progstats", false, "in sensor runs, print each program's average run time (kernel BPF stats; adds some cost; "+
		"the syscall handlers' time counts in kestrel_sys_enter/kestrel_sys_exit, which tail-call them)")
	flag.Parse()
	n := counts{opens: *opens, execs: *execs, conns: *conns, watched: *watched, realistic: *realistic,
		unwatched: *unwatched, distinct: *distinct, files: *files, datagrams: *datagrams}
	if err := run(*rounds, n, strings.Split(*storms, ","), *repeatWindow); err != nil {
		fmt.Fprintln(os.Stderr, "sensorbench:", err)
		os.Exit(1)
	}
}

// progStats enables the kernel's per-program run statistics in sensor runs.
var progStats bool

type mode string

const (
	modeNone   mode = "none"
	modeFloor  mode = "floor"
	modeSensor mode = "sensor"
)

type storm struct {
	name string
	args []string
	ops  int
}

// sample is one storm run in one mode.
type sample struct {
	nsPerOp   float64 // wall clock
	cpuPerOp  float64 // CPU time of the storm process and its children
	events    uint64
	lost      uint64
	seconds   float64
	sensorCPU time.Duration // user+sys of this process (the sensor's reader) during the storm
}

// counts are the operations per storm.
type counts struct {
	opens, execs, conns, watched, realistic, unwatched, distinct, files, datagrams int
}

func run(rounds int, n counts, names []string, repeatWindow time.Duration) error {
	if err := runtime.CheckPrivileges(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "sensorbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	plain := filepath.Join(dir, "plain.txt")
	model := filepath.Join(dir, "weights.safetensors")
	for _, p := range []string{plain, model} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			return err
		}
	}
	realList, err := realisticPaths(dir)
	if err != nil {
		return err
	}
	distinctList, err := distinctModels(dir, n.files)
	if err != nil {
		return err
	}
	all := map[string]storm{
		"open":      {"open", []string{"open", plain, strconv.Itoa(n.opens)}, n.opens},
		"realistic": {"realistic", []string{"openlist", realList, strconv.Itoa(n.realistic)}, n.realistic},
		"unwatched": {"unwatched", []string{"getppid", "-", strconv.Itoa(n.unwatched)}, n.unwatched},
		"exec":      {"exec", []string{"exec", "/bin/true", strconv.Itoa(n.execs)}, n.execs},
		"connect":   {"connect", []string{"connect", "", strconv.Itoa(n.conns)}, n.conns},
		"watched":   {"watched", []string{"open", model, strconv.Itoa(n.watched)}, n.watched},
		"distinct":  {"distinct", []string{"openlist", distinctList, strconv.Itoa(n.distinct)}, n.distinct},
		"relative":  {"relative", []string{"openrel", plain, strconv.Itoa(n.opens)}, n.opens},
		"udp":       {"udp", []string{"udp", "", strconv.Itoa(n.datagrams)}, n.datagrams},
	}
	var list []storm
	for _, name := range names {
		s, ok := all[strings.TrimSpace(name)]
		if !ok {
			return fmt.Errorf("unknown storm %q (want open, realistic, unwatched, exec, connect, watched, distinct, relative, udp)", name)
		}
		if s.ops > 0 {
			list = append(list, s)
		}
	}
	cfg := config.Default().Capture
	cfg.OpenRepeatWindow = config.Duration(repeatWindow)
	results := map[string]map[mode][]sample{}
	for _, s := range list {
		results[s.name] = map[mode][]sample{}
	}
	modes := []mode{modeNone, modeFloor, modeSensor}
	for r := range rounds {
		// Rotate the order each round so that no mode always runs first.
		order := slices.Concat(modes[r%3:], modes[:r%3])
		for _, m := range order {
			fmt.Fprintf(os.Stderr, "round %d/%d: %s\n", r+1, rounds, m)
			got, err := runMode(m, cfg, list)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, m, err)
			}
			for name, smp := range got {
				results[name][m] = append(results[name][m], smp)
			}
		}
	}
	report(os.Stdout, list, results, rounds)
	return nil
}

// runMode loads what mode needs, runs every storm once, and unloads.
func runMode(m mode, cfg config.CaptureConfig, list []storm) (map[string]sample, error) {
	var s *runtime.Sensor
	var err error
	switch m {
	case modeFloor:
		s, err = runtime.LoadFloor(cfg, nil)
	case modeSensor:
		s, err = runtime.Load(cfg, &runtime.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}
	if err != nil {
		return nil, err
	}
	var events, lost atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	if s != nil {
		go func() {
			done <- s.Run(ctx, func(e *event.Event) {
				if e.Kind == event.KindLost {
					lost.Add(e.Lost.Count)
					return
				}
				events.Add(1)
			})
		}()
	} else {
		close(done)
	}
	out := map[string]sample{}
	for _, st := range list {
		var stats io.Closer
		if progStats && m != modeNone {
			if stats, err = ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err != nil {
				cancel()
				<-done
				s.Close()
				return nil, fmt.Errorf("enable BPF stats: %w", err)
			}
		}
		before := s.ProgramStats()
		e0, l0 := events.Load(), lost.Load()
		cpu0 := selfCPU()
		start := time.Now()
		ns, cpu, err := runWorker(st.args)
		if err != nil {
			cancel()
			<-done
			s.Close()
			return nil, fmt.Errorf("%s storm: %w", st.name, err)
		}
		secs := time.Since(start).Seconds()
		if stats != nil {
			printStats(st.name, m, before, s.ProgramStats())
			stats.Close()
		}
		if s != nil {
			// Let the reader drain what the storm left in the ring.
			time.Sleep(3 * cfg.PollInterval.D())
		}
		out[st.name] = sample{
			nsPerOp:   float64(ns) / float64(st.ops),
			cpuPerOp:  float64(cpu) / float64(st.ops),
			events:    events.Load() - e0,
			lost:      lost.Load() - l0,
			seconds:   secs,
			sensorCPU: selfCPU() - cpu0,
		}
	}
	cancel()
	if s != nil {
		if err := <-done; err != nil {
			s.Close()
			return nil, err
		}
		if err := s.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// selfCPU is the user and system time of this process: in sensor runs, the
// ring-buffer reader and decoder (the BPF programs run in the storm's
// process and count there). Waited-for children are not included.
func selfCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runWorker runs one storm in a child and returns its elapsed wall-clock and
// CPU nanoseconds.
func runWorker(args []string) (wall, cpu int64, err error) {
	self, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	out, err := exec.Command(self, append([]string{"-worker"}, args...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, 0, fmt.Errorf("worker %v: %w: %s", args, err, ee.Stderr)
		}
		return 0, 0, fmt.Errorf("worker %v: %w", args, err)
	}
	if _, err := fmt.Sscan(string(out), &wall, &cpu); err != nil {
		return 0, 0, fmt.Errorf("worker %v: bad output %q: %w", args, out, err)
	}
	return wall, cpu, nil
}

func printStats(storm string, m mode, before, after map[string]runtime.ProgramStat) {
	names := make([]string, 0, len(after))
	for n := range after {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		runs := after[n].Runs - before[n].Runs
		if runs == 0 {
			continue
		}
		rt := after[n].Runtime - before[n].Runtime
		fmt.Fprintf(os.Stderr, "  %s/%s %-28s runs %9d  avg %6.0f ns\n", storm, m, n, runs, float64(rt.Nanoseconds())/float64(runs))
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func report(w io.Writer, list []storm, results map[string]map[mode][]sample, rounds int) {
	for _, metric := range []struct {
		title string
		get   func(sample) float64
	}{
		{"wall clock", func(s sample) float64 { return s.nsPerOp }},
		{"CPU time (user+sys of the storm process and its children; steadier on a shared machine)", func(s sample) float64 { return s.cpuPerOp }},
	} {
		fmt.Fprintf(w, "== %s\n", metric.title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "storm\tops\tnone ns/op\tfloor/none\tsensor/none\tsensor-floor\tevents/s\tevents\tlost\tsensor cpu ms\tcpu us/1k ev\t\n")
		for _, st := range list {
			r := results[st.name]
			ns := func(m mode) float64 {
				var v []float64
				for _, s := range r[m] {
					v = append(v, metric.get(s))
				}
				return median(v)
			}
			// Speed ratios per round (adjacent runs), then the median.
			ratio := func(m mode) float64 {
				var v []float64
				for i := range r[m] {
					if i < len(r[modeNone]) && metric.get(r[m][i]) > 0 {
						v = append(v, metric.get(r[modeNone][i])/metric.get(r[m][i]))
					}
				}
				return median(v)
			}
			var evps, cpuMS, cpuPer1k []float64
			var events, lost uint64
			for _, s := range r[modeSensor] {
				evps = append(evps, float64(s.events)/s.seconds)
				events += s.events
				lost += s.lost
				cpuMS = append(cpuMS, float64(s.sensorCPU.Microseconds())/1000)
				if s.events >= 1000 { // fewer: the reader's idle polling, not events

					cpuPer1k = append(cpuPer1k, float64(s.sensorCPU.Nanoseconds())/float64(s.events))
				}
			}
			per1k := "-"
			if len(cpuPer1k) > 0 {
				per1k = fmt.Sprintf("%.0f", median(cpuPer1k))
			}
			fl, se := ratio(modeFloor), ratio(modeSensor)
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.3f\t%.3f\t%+.3f\t%.0f\t%d\t%d\t%.1f\t%s\t\n",
				st.name, st.ops, ns(modeNone), fl, se, se-fl, median(evps), events, lost, median(cpuMS), per1k)
		}
		tw.Flush()
		for _, st := range list {
			fmt.Fprintf(w, "  %s ns/op by round:", st.name)
			for _, m := range []mode{modeNone, modeFloor, modeSensor} {
				fmt.Fprintf(w, " %s[", m)
				for i, s := range results[st.name][m] {
					if i > 0 {
						fmt.Fprint(w, " ")
					}
					fmt.Fprintf(w, "%.0f", metric.get(s))
				}
				fmt.Fprint(w, "]")
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintf(w, "medians of %d alternating rounds; ratios are speed relative to none (1.000 = no cost); "+
		"events and lost are totals over the sensor runs; sensor cpu is this process's user+sys during a sensor "+
		"run (reader and decoder; the BPF programs count in the storm's time), per run and per 1000 events\n", rounds)
}
