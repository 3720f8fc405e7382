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
)

// expectation is what one replayed script must, may and must not fire.
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

// netLine is the part of an egress or accept line the harness checks.
type netLine struct {
	Kind      string `json:"kind"`
	Container *struct {
		ID string `json:"id"`
	} `json:"container"`
	Net struct {
		Protocol  string `json:"protocol"`
		DPort     int    `json:"dport"`
		BytesSent uint64 `json:"bytes_sent"`
		Closed    bool   `json:"closed"`
		Origin    string `json:"origin"`
	} `json:"net"`
}

// sensorProc runs the sensor binary and collects its JSON lines.
type sensorProc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []finding
	raw   []string
	// net holds the egress and accept lines of simulated containers.
	net   []netLine
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
	s.cmd = exec.Command(bin, "--tail", "--in-process", "-o", "json", "--kind", "finding,status,egress,accept", "--config", cfg)
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
			if f.Kind == "egress" || f.Kind == "accept" {
				var n netLine
				if json.Unmarshal(sc.Bytes(), &n) == nil && n.Container != nil && strings.HasPrefix(n.Container.ID, "simctr-") {
					s.mu.Lock()
					s.net = append(s.net, n)
					s.mu.Unlock()
				}
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

// replayHarness is one sensor run over the harness network, cgroups and
// helper files: scripts are replayed against it one after the other.
type replayHarness struct {
	t      *testing.T
	work   string
	sensor *sensorProc
	// late holds findings of a script's containers that arrived while a
	// later script ran; they count for the script that owns the container.
	late map[string][]finding
}

// harnessPrefix sources the harness environment and helpers before a script.
const harnessPrefix = ". ./prelude.sh >/dev/null 2>&1; . ./lib.sh; "

// newReplayHarness skips where the harness cannot run, builds the sensor,
// sets up the harness (network, helper files, models), runs beforeSensor (a
// bash snippet, "" for none: processes that must predate the sensor), starts
// the sensor with testdata/sensor.yaml and registers the cleanup, which also
// restores core_pattern.
func newReplayHarness(t *testing.T, beforeSensor string) *replayHarness {
	t.Helper()
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

	root, _ := filepath.Abs("../..")
	work, err := os.MkdirTemp("/tmp", "kestrel-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	rh := &replayHarness{t: t, work: work, late: map[string][]finding{}}
	bin := filepath.Join(work, "sensor")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sensor")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(work)
		t.Fatalf("build sensor: %v\n%s", err, out)
	}

	corePattern, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
	t.Cleanup(func() {
		out, err := rh.shell(60*time.Second, ". ./prelude.sh >/dev/null 2>&1; bash ./cleanup.sh")
		if err != nil {
			t.Logf("cleanup: %v\n%s", err, out)
		}
		if len(corePattern) > 0 {
			_ = os.WriteFile("/proc/sys/kernel/core_pattern", corePattern, 0o644)
		}
		os.RemoveAll(work)
	})
	if out, err := rh.shell(120*time.Second, harnessPrefix+". ./setup.sh"); err != nil {
		t.Fatalf("harness setup: %v\n%s", err, out)
	}
	if beforeSensor != "" {
		if out, err := rh.shell(60*time.Second, harnessPrefix+beforeSensor); err != nil {
			t.Fatalf("before the sensor: %v\n%s", err, out)
		}
	}

	cfg := filepath.Join(work, "sensor.yaml")
	tmpl, err := os.ReadFile("testdata/sensor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, bytes.ReplaceAll(tmpl, []byte("$H"), []byte(rh.dir())), 0o600); err != nil {
		t.Fatal(err)
	}
	rh.sensor = startSensor(t, bin, cfg)
	return rh
}

// dir is the harness directory ($H of the scripts).
func (rh *replayHarness) dir() string { return filepath.Join(rh.work, "h") }

// shell runs script with bash in testdata/harness, with H and SRC set.
func (rh *replayHarness) shell(timeout time.Duration, script string) (string, error) {
	src, _ := filepath.Abs("testdata/harness")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "HARNESS_DIR="+rh.dir(), "SRC="+src)
	// Scripts leave servers running in the background (B1 for B3): a file,
	// unlike a pipe, does not make us wait for them.
	f, err := os.CreateTemp(rh.work, "out-*.log")
	if err != nil {
		return "", err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	out, _ := os.ReadFile(f.Name())
	return string(out), err
}

// replayResult is the verdict on one replayed script.
type replayResult struct {
	id                   string
	must, fired, missing []string
	unexpected, aboveLow []string
	extra                []string
	scenarioErr          error
}

// verdict is "ok" or what is wrong with the result.
func (r replayResult) verdict() string {
	switch {
	case len(r.missing) > 0:
		return "MISSING " + strings.Join(r.missing, ",")
	case len(r.unexpected) > 0:
		return "FALSE POSITIVE " + strings.Join(r.unexpected, ",")
	case len(r.aboveLow) > 0:
		return "BENIGN ABOVE LOW " + strings.Join(r.aboveLow, ",")
	}
	return "ok"
}

// replay runs script (relative to testdata/harness) as the scenario id, waits
// for the sensor to go quiet and judges the findings against exp; benign
// scripts must also fire nothing above low.
func (rh *replayHarness) replay(id, script string, exp expectation, benign bool) replayResult {
	t := rh.t
	start := rh.sensor.count()
	out, err := rh.shell(150*time.Second, harnessPrefix+". "+script)
	waitQuiet(rh.sensor, 2*time.Second, 12*time.Second)
	// Only what this harness caused is judged: the sensor sees the whole
	// host, where other tests, other sensors and the host's own services
	// raise findings too.
	got := ours(attribute(rh.sensor.since(start), id), rh.work)
	// Follow-ups of an earlier scenario's container that arrive now belong
	// to that scenario.
	for _, f := range rh.sensor.since(start) {
		if sid := scenarioOfContainer(f); sid != "" && sid != id {
			rh.late[sid] = append(rh.late[sid], f)
		}
	}
	got = append(got, rh.late[id]...)
	fired := map[string]finding{}
	for _, f := range got {
		if prev, ok := fired[f.Rule]; !ok || sevRank[f.Severity] > sevRank[prev.Severity] {
			fired[f.Rule] = f
		}
	}
	r := replayResult{id: id, must: exp.Must, scenarioErr: err}
	r.missing = append(r.missing, rh.checkEgress(id, out)...)
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
	if benign {
		for rule, f := range fired {
			if sevRank[f.Severity] > sevRank["low"] {
				r.aboveLow = append(r.aboveLow, rule)
			}
		}
		sort.Strings(r.aboveLow)
	}
	// Every finding must say who, what, where and why.
	for _, f := range got {
		if f.Rule == "" || f.Title == "" || f.Explanation == "" || len(f.Evidence) == 0 || f.Process == nil {
			t.Errorf("%s: finding %s lacks rule, title, explanation, evidence or process: %+v", id, f.Rule, f)
		}
		if !benign && strings.Contains(out, "simctr-") && f.Container == nil && f.Rule != "ESC-003" {
			t.Logf("%s: %s fired on a host process (no container)", id, f.Rule)
		}
	}
	if err != nil {
		t.Logf("%s: script: %v\n%s", id, err, out)
	}
	return r
}

// checkEgress checks the "egress-expect proto=P origin=O dport=N bytes=N"
// lines a script printed (what it sent, as the attacker counted it): the
// sensor must report, for a container of scenario id, a closed egress of
// exactly those bytes. It returns what is missing.
func (rh *replayHarness) checkEgress(id, out string) []string {
	var missing []string
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "egress-expect ")
		if !ok {
			continue
		}
		want := map[string]string{}
		for _, kv := range strings.Fields(rest) {
			k, v, _ := strings.Cut(kv, "=")
			want[k] = v
		}
		match := func(n netLine) bool {
			return n.Kind == "egress" && n.Net.Closed && scenarioOfContainer(finding{Container: &struct {
				ID      string `json:"id"`
				Runtime string `json:"runtime"`
				Pod     string `json:"pod"`
			}{ID: n.Container.ID}}) == id &&
				n.Net.Protocol == want["proto"] && n.Net.Origin == want["origin"] &&
				fmt.Sprint(n.Net.DPort) == want["dport"]
		}
		var seen []string
		found := false
		// Datagram entries are reported closed at the walk after their
		// socket closes: wait for a condition, not a time.
		for deadline := time.Now().Add(15 * time.Second); !found && time.Now().Before(deadline); {
			seen = seen[:0]
			rh.sensor.mu.Lock()
			for _, n := range rh.sensor.net {
				if match(n) {
					seen = append(seen, fmt.Sprint(n.Net.BytesSent))
					found = found || fmt.Sprint(n.Net.BytesSent) == want["bytes"]
				}
			}
			rh.sensor.mu.Unlock()
			if !found {
				time.Sleep(200 * time.Millisecond)
			}
		}
		if !found {
			missing = append(missing, "egress("+rest+"; reported bytes "+strings.Join(seen, ",")+")")
		}
	}
	return missing
}

// report logs the result table, fails the test for every result that is not
// ok, and writes the table and the raw findings to the file named by the
// environment variable reportEnv, if set. extra names columns added after the
// first one, filled per result by cells.
func (rh *replayHarness) report(title, reportEnv string, results []replayResult, extra []string, cells func(replayResult) []string) {
	t := rh.t
	var table strings.Builder
	head := []string{"scenario"}
	if len(extra) > 0 {
		head = []string{"variant"}
	}
	head = append(append(head, extra...), "must fire", "fired", "also fired (not in must/may)", "result")
	fmt.Fprintf(&table, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	for _, r := range results {
		verdict := r.verdict()
		row := []string{r.id}
		if cells != nil {
			row = append(row, cells(r)...)
		}
		row = append(row, strings.Join(r.must, ", "), strings.Join(r.fired, ", "), strings.Join(r.extra, ", "), verdict)
		fmt.Fprintf(&table, "| %s |\n", strings.Join(row, " | "))
		if verdict != "ok" {
			t.Errorf("%s: %s", r.id, verdict)
		}
	}
	t.Logf("%s:\n%s", title, table.String())
	if p := os.Getenv(reportEnv); p != "" {
		rh.sensor.mu.Lock()
		raw := strings.Join(rh.sensor.raw, "\n")
		rh.sensor.mu.Unlock()
		_ = os.WriteFile(p, []byte(table.String()+"\n"+raw+"\n"), 0o644)
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

// ours keeps the findings this harness caused: those of its simctr-*
// containers, of host processes descended from this test binary, and of host
// processes running a file under work (the harness's payloads that the
// kernel itself starts, such as a core_pattern or release_agent helper,
// whose parent is kthreadd).
func ours(fs []finding, work string) []finding {
	self, _ := os.Executable()
	var out []finding
	for _, f := range fs {
		if f.Container != nil {
			if strings.HasPrefix(f.Container.ID, "simctr-") {
				out = append(out, f)
			}
			continue
		}
		if f.Process != nil && (descendsFrom(f.Process.Ancestors, self) || runsFileUnder(f.Process.Exe, f.Process.Args, work)) {
			out = append(out, f)
		}
	}
	return out
}

// descendsFrom reports whether one of the ancestors ran exe.
func descendsFrom(ancestors []any, exe string) bool {
	if exe == "" {
		return false
	}
	for _, a := range ancestors {
		if m, ok := a.(map[string]any); ok && m["exe"] == exe {
			return true
		}
	}
	return false
}

// runsFileUnder reports whether exe or an argument (a script an interpreter
// runs) is a file under dir.
func runsFileUnder(exe string, args []string, dir string) bool {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	for _, p := range append([]string{exe}, args...) {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
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

// The harness judges only what it caused: a finding of another container or
// of an unrelated host process (another sensor, another test, a host
// service) must not count for or against a scenario.
func TestOursKeepsOnlyTheHarnessFindings(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Skipf("no path for the test binary: %v", err)
	}
	work := "/tmp/kestrel-e2e-123"
	line := func(s string) finding {
		var f finding
		if err := json.Unmarshal([]byte(s), &f); err != nil {
			t.Fatal(err)
		}
		return f
	}
	fs := []finding{
		line(`{"rule":"ESC-002","container":{"id":"simctr-infer-a2"},"process":{"exe":"/usr/bin/sh"}}`),
		line(`{"rule":"ESC-004","container":{"id":"3f2a9c"},"process":{"exe":"/usr/bin/cat"}}`),
		line(`{"rule":"EXF-001","process":{"exe":"/usr/bin/curl","ancestors":[{"exe":"/usr/bin/bash"},{"exe":"/usr/sbin/sshd"}]}}`),
		line(`{"rule":"EXF-001","process":{"exe":"/usr/bin/curl","ancestors":[{"exe":"/usr/bin/bash"},{"exe":` + jsonString(self) + `}]}}`),
		line(`{"rule":"ESC-003","process":{"exe":"/usr/bin/dash","args":["/bin/sh","` + work + `/h/cp_payload.sh","123"],"ancestors":[{"pid":2}]}}`),
		line(`{"rule":"ESC-003","process":{"exe":"/usr/bin/dash","args":["/bin/sh","/tmp/kestrel-e2e-1234/h/cp_payload.sh"],"ancestors":[{"pid":2}]}}`),
	}
	var got []string
	for _, f := range ours(fs, work) {
		got = append(got, f.Rule+" "+f.Process.Exe)
	}
	want := []string{"ESC-002 /usr/bin/sh", "EXF-001 /usr/bin/curl", "ESC-003 /usr/bin/dash"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ours kept %q; want %q", got, want)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
