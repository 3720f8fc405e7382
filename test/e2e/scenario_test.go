package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// scenarioOrder is the order of §6–§7: attacks, then B1 with B3 right after
// it while B1's server is still up.
var scenarioOrder = []string{"A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8", "A9", "A10", "A11", "A12",
	"B1", "B3", "B2", "B4", "B5"}

type expectation struct {
	Must    []string `yaml:"must"`
	May     []string `yaml:"may"`
	MustNot []string `yaml:"must_not"`
}

// finding is the part of a --tail -o json finding line the harness checks.
type finding struct {
	Kind        string `json:"kind"`
	Rule        string `json:"rule"`
	Severity    string `json:"severity"`
	Title       string `json:"title"`
	Explanation string `json:"explanation"`
	Count       int    `json:"count"`
	MITRE       []string
	Process     *struct {
		PID       int      `json:"pid"`
		Exe       string   `json:"exe"`
		Ancestors []any    `json:"ancestors"`
		Args      []string `json:"args"`
	} `json:"process"`
	Container *struct {
		ID      string `json:"id"`
		Runtime string `json:"runtime"`
		Pod     string `json:"pod"`
	} `json:"container"`
	Evidence []json.RawMessage `json:"evidence"`
	Ready    *bool             `json:"ready"`
}

var sevRank = map[string]int{"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}

// sensorProc runs the sensor binary and collects its JSON lines.
type sensorProc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []finding
	raw   []string
	ready chan struct{}
	done  chan struct{}
	errb  bytes.Buffer
}

func (s *sensorProc) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

func (s *sensorProc) since(i int) []finding {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]finding(nil), s.lines[i:]...)
}

func startSensor(t *testing.T, bin, cfg string) *sensorProc {
	t.Helper()
	s := &sensorProc{ready: make(chan struct{}), done: make(chan struct{})}
	s.cmd = exec.Command(bin, "--tail", "--in-process", "-o", "json", "--kind", "finding,status", "--config", cfg)
	s.cmd.Stderr = &s.errb
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start sensor: %v", err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		readyOnce := sync.Once{}
		for sc.Scan() {
			var f finding
			if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
				continue
			}
			if f.Kind == "status" && f.Ready != nil && *f.Ready {
				readyOnce.Do(func() { close(s.ready) })
				continue
			}
			if f.Kind != "finding" {
				continue
			}
			s.mu.Lock()
			s.lines = append(s.lines, f)
			s.raw = append(s.raw, sc.Text())
			s.mu.Unlock()
		}
	}()
	select {
	case <-s.ready:
	case <-s.done:
		t.Fatalf("sensor exited before it was ready: %s", s.errb.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("sensor not ready after 60s: %s", s.errb.String())
	}
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
		}
		_ = s.cmd.Wait()
	})
	return s
}

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("the scenario harness needs %s on PATH (.ci/run installs them)", strings.Join(missing, ", "))
	}
}

func TestScenarios(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the scenario harness needs root: it loads eBPF programs and builds namespaces and cgroups")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("kernel has no BTF (/sys/kernel/btf/vmlinux): the sensor cannot load here")
	}
	if testing.Short() {
		t.Skip("scenario replay takes minutes; skipped with -short")
	}
	requireTools(t, "bash", "python3", "gcc", "curl", "tar", "unshare", "nsenter", "ip", "sha256sum")

	expect := map[string]expectation{}
	data, err := os.ReadFile("testdata/expect.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &expect); err != nil {
		t.Fatalf("testdata/expect.yaml: %v", err)
	}

	root, _ := filepath.Abs("../..")
	work, err := os.MkdirTemp("/tmp", "kestrel-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	h := filepath.Join(work, "h")
	src, _ := filepath.Abs("testdata/harness")
	bin := filepath.Join(work, "sensor")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sensor")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build sensor: %v\n%s", err, out)
	}

	corePattern, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
	env := append(os.Environ(), "HARNESS_DIR="+h, "SRC="+src)
	shell := func(timeout time.Duration, script string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-c", script)
		cmd.Dir = src
		cmd.Env = env
		// Scenarios leave servers running in the background (B1 for B3):
		// a file, unlike a pipe, does not make us wait for them.
		f, err := os.CreateTemp(work, "out-*.log")
		if err != nil {
			return "", err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
		err = cmd.Run()
		out, _ := os.ReadFile(f.Name())
		return string(out), err
	}
	prefix := ". ./prelude.sh >/dev/null 2>&1; . ./lib.sh; "
	t.Cleanup(func() {
		out, err := shell(60*time.Second, ". ./prelude.sh >/dev/null 2>&1; bash ./cleanup.sh")
		if err != nil {
			t.Logf("cleanup: %v\n%s", err, out)
		}
		if len(corePattern) > 0 {
			_ = os.WriteFile("/proc/sys/kernel/core_pattern", corePattern, 0o644)
		}
		os.RemoveAll(work)
	})
	if out, err := shell(120*time.Second, prefix+". ./setup.sh"); err != nil {
		t.Fatalf("harness setup: %v\n%s", err, out)
	}

	cfg := filepath.Join(work, "sensor.yaml")
	tmpl, err := os.ReadFile("testdata/sensor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, bytes.ReplaceAll(tmpl, []byte("$H"), []byte(h)), 0o600); err != nil {
		t.Fatal(err)
	}
	sensor := startSensor(t, bin, cfg)

	type result struct {
		id                   string
		must, fired, missing []string
		unexpected, aboveLow []string
		extra                []string
		scenarioErr          error
	}
	var results []result
	late := map[string][]finding{}
	for _, id := range scenarioOrder {
		exp, ok := expect[id]
		if !ok {
			t.Fatalf("no expectation for %s in testdata/expect.yaml", id)
		}
		start := sensor.count()
		out, err := shell(150*time.Second, prefix+". ../scenarios/"+id+".sh")
		waitQuiet(sensor, 2*time.Second, 12*time.Second)
		got := attribute(sensor.since(start), id)
		// Follow-ups of an earlier scenario's container that arrive now belong
		// to that scenario.
		for _, f := range sensor.since(start) {
			if sid := scenarioOfContainer(f); sid != "" && sid != id {
				late[sid] = append(late[sid], f)
			}
		}
		got = append(got, late[id]...)
		fired := map[string]finding{}
		for _, f := range got {
			if prev, ok := fired[f.Rule]; !ok || sevRank[f.Severity] > sevRank[prev.Severity] {
				fired[f.Rule] = f
			}
		}
		r := result{id: id, must: exp.Must, scenarioErr: err}
		for rule := range fired {
			r.fired = append(r.fired, rule+"("+fired[rule].Severity+")")
		}
		sort.Strings(r.fired)
		for _, m := range exp.Must {
			if _, ok := fired[m]; !ok {
				r.missing = append(r.missing, m)
			}
		}
		allowed := map[string]bool{}
		for _, m := range append(append([]string{}, exp.Must...), exp.May...) {
			allowed[m] = true
		}
		for rule := range fired {
			if !allowed[rule] {
				r.extra = append(r.extra, rule)
			}
		}
		sort.Strings(r.extra)
		for _, m := range exp.MustNot {
			if _, ok := fired[m]; ok {
				r.unexpected = append(r.unexpected, m)
			}
		}
		if strings.HasPrefix(id, "B") {
			for rule, f := range fired {
				if sevRank[f.Severity] > sevRank["low"] {
					r.aboveLow = append(r.aboveLow, rule)
				}
			}
		}
		// Every finding must say who, what, where and why.
		for _, f := range got {
			if f.Rule == "" || f.Title == "" || f.Explanation == "" || len(f.Evidence) == 0 || f.Process == nil {
				t.Errorf("%s: finding %s lacks rule, title, explanation, evidence or process: %+v", id, f.Rule, f)
			}
			if strings.HasPrefix(id, "A") && strings.Contains(out, "simctr-") && f.Container == nil && f.Rule != "ESC-003" {
				t.Logf("%s: %s fired on a host process (no container)", id, f.Rule)
			}
		}
		results = append(results, r)
		if err != nil {
			t.Logf("%s: scenario script: %v\n%s", id, err, out)
		}
	}

	var table strings.Builder
	fmt.Fprintf(&table, "| scenario | must fire | fired | also fired (not in must/may) | result |\n|---|---|---|---|---|\n")
	for _, r := range results {
		verdict := "ok"
		switch {
		case len(r.missing) > 0:
			verdict = "MISSING " + strings.Join(r.missing, ",")
		case len(r.unexpected) > 0:
			verdict = "FALSE POSITIVE " + strings.Join(r.unexpected, ",")
		case len(r.aboveLow) > 0:
			verdict = "BENIGN ABOVE LOW " + strings.Join(r.aboveLow, ",")
		}
		fmt.Fprintf(&table, "| %s | %s | %s | %s | %s |\n", r.id, strings.Join(r.must, ", "), strings.Join(r.fired, ", "), strings.Join(r.extra, ", "), verdict)
		if verdict != "ok" {
			t.Errorf("%s: %s", r.id, verdict)
		}
	}
	t.Logf("scenario results:\n%s", table.String())
	if p := os.Getenv("KESTREL_E2E_REPORT"); p != "" {
		_ = os.WriteFile(p, []byte(table.String()+"\n"+strings.Join(sensor.raw, "\n")+"\n"), 0o644)
	}
}

// scenarioOfContainer names the scenario whose simulated container raised f:
// the harness names containers simctr-<role>-<scenario>, e.g. simctr-infer-a8b.
func scenarioOfContainer(f finding) string {
	if f.Container == nil || !strings.HasPrefix(f.Container.ID, "simctr-") {
		return ""
	}
	id := f.Container.ID[strings.LastIndexByte(f.Container.ID, '-')+1:]
	id = strings.ToUpper(strings.TrimRight(id, "bcdefgh"))
	return id
}

// attribute keeps the findings of scenario id: those of its own containers,
// and host findings raised while it ran.
func attribute(fs []finding, id string) []finding {
	var out []finding
	for _, f := range fs {
		if sid := scenarioOfContainer(f); sid == "" || sid == id {
			out = append(out, f)
		}
	}
	return out
}

// waitQuiet waits until the sensor has printed no finding for quiet, or max.
func waitQuiet(s *sensorProc, quiet, max time.Duration) {
	deadline := time.Now().Add(max)
	last, lastChange := s.count(), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		if n := s.count(); n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) >= quiet {
			return
		}
	}
}
