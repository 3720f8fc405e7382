package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/export"
)

// buildSensor builds cmd/sensor into dir.
func buildSensor(t *testing.T, dir string) string {
	t.Helper()
	root, _ := filepath.Abs("../..")
	bin := filepath.Join(dir, "sensor")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sensor")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build sensor: %v\n%s", err, out)
	}
	return bin
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads eBPF programs and builds cgroups and namespaces")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("kernel has no BTF (/sys/kernel/btf/vmlinux): the sensor cannot load here")
	}
}

// simContainer runs script in a simulated container: a cgroup v2 directory
// named like the harness's, and new mount and pid namespaces.
func simContainer(t *testing.T, name, script string) {
	t.Helper()
	base := "/sys/fs/cgroup/unified"
	if _, err := os.Stat(filepath.Join(base, "cgroup.procs")); err != nil {
		base = "/sys/fs/cgroup"
	}
	cg := filepath.Join(base, name)
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(cg) })
	cmd := exec.Command("bash", "-c", `echo $$ > "$0/cgroup.procs"; exec unshare --mount --pid --net --uts --ipc --fork -- sh -c "$1"`, cg, script)
	out, _ := cmd.CombinedOutput() // the attempts fail with EACCES here; that is the point
	t.Logf("%s: %s", name, out)
}

// TestDaemonSubscribeFilterAndTailAttached starts the daemon, subscribes with
// a filter (severity >= high and one container), replays an escape attempt in
// that container, in another container and on the host, and checks that the
// subscriber gets exactly the matching findings. A `sensor --tail` attached to
// the daemon must show the same findings as the daemon's own feed.
func TestDaemonSubscribeFilterAndTailAttached(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	bin := buildSensor(t, dir)
	sock := filepath.Join(dir, "sensor.sock")
	cfg := filepath.Join(dir, "sensor.yaml")
	metricsAddr := freeLoopbackAddr(t)
	ocsfFile := filepath.Join(dir, "events.ocsf.jsonl")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`log_level: warn
context:
  container_cgroup_regex: ['^/simctr-']
  cri_socket: "off"
gpu:
  source: "off"
export:
  unix_socket: %s
  file: {path: %s, format: ocsf, max_bytes: 1073741824, keep: 1}
metrics:
  listen: %s
`, sock, ocsfFile, metricsAddr)), 0o600)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	daemon := exec.CommandContext(ctx, bin, "--config", cfg)
	daemon.Cancel = func() error { return daemon.Process.Signal(os.Interrupt) }
	daemon.WaitDelay = 10 * time.Second
	var derr safeBuffer
	daemon.Stderr = &derr
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); daemon.Wait() }()

	var c *export.Client
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		if _, serr := os.Stat(sock); serr == nil {
			dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
			c, err = export.Dial(dctx, sock)
			if err == nil {
				_, err = c.Status(dctx)
			}
			dcancel()
			if err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not answering on %s: %v\n%s", sock, err, derr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer c.Close()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v (%v); want 0600", fi.Mode().Perm(), err)
	}

	target := fmt.Sprintf("simctr-infer-d%d", os.Getpid())
	other := fmt.Sprintf("simctr-infer-o%d", os.Getpid())
	var (
		mu             sync.Mutex
		filtered, feed []*event.Event
		tailLines      []map[string]any
		tailRdy        = make(chan struct{})
	)
	// Both subscriptions start right after the ring's head now, so none can
	// miss what the attempts below raise, however late its stream opens.
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	head := export.Cursor{Instance: st.GetInstanceId(), Seq: st.GetRing().GetHeadSeq()}
	sub := func(f export.Filters, dst *[]*event.Event) {
		cur := head
		_ = c.SubscribeWith(ctx, f, &cur, func(ev *event.Event) {
			mu.Lock()
			*dst = append(*dst, ev)
			mu.Unlock()
		}, &export.SubscribeOptions{OnHeartbeat: func(uint64) {}})
	}
	go sub(export.Filters{Allow: []export.Filter{{MinSeverity: event.SevHigh, Container: "^" + target + "$"}}}, &filtered)
	go sub(export.Filters{Allow: []export.Filter{{Kinds: []event.Kind{event.KindFinding}}}}, &feed)

	tail := exec.CommandContext(ctx, bin, "--tail", "-o", "json", "--kind", "finding", "--socket", sock)
	tail.Cancel = func() error { return tail.Process.Signal(os.Interrupt) }
	tail.WaitDelay = 5 * time.Second
	tout, _ := tail.StdoutPipe()
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(tout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			if m["kind"] == "status" {
				if f, _ := m["fields"].(map[string]any); f != nil && f["mode"] == "attached to daemon" {
					close(tailRdy)
				}
				continue
			}
			mu.Lock()
			tailLines = append(tailLines, m)
			mu.Unlock()
		}
	}()
	select {
	case <-tailRdy:
	case <-time.After(20 * time.Second):
		t.Fatal("sensor --tail did not attach to the daemon")
	}
	// A second tail prints the findings as OCSF; its stderr has the status
	// line (stdout is OCSF only).
	var ocsfLines []string
	ocsfTail := exec.CommandContext(ctx, bin, "--tail", "-o", "ocsf", "--kind", "finding", "--socket", sock)
	ocsfTail.Cancel = func() error { return ocsfTail.Process.Signal(os.Interrupt) }
	ocsfTail.WaitDelay = 5 * time.Second
	oout, _ := ocsfTail.StdoutPipe()
	oerr, _ := ocsfTail.StderrPipe()
	if err := ocsfTail.Start(); err != nil {
		t.Fatal(err)
	}
	ocsfRdy := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(oerr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"mode":"attached to daemon"`) {
				close(ocsfRdy)
				io.Copy(io.Discard, oerr)
				return
			}
		}
	}()
	go func() {
		sc := bufio.NewScanner(oout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			mu.Lock()
			ocsfLines = append(ocsfLines, sc.Text())
			mu.Unlock()
		}
	}()
	select {
	case <-ocsfRdy:
	case <-time.After(20 * time.Second):
		t.Fatal("sensor --tail -o ocsf did not attach to the daemon")
	}

	// The same host-namespace attempts from the target container, another
	// container and the host.
	attempt := "cat /proc/1/ns/net; cat /proc/1/root/etc/hostname; true"
	simContainer(t, target, attempt)
	simContainer(t, other, attempt)
	exec.Command("sh", "-c", attempt).Run()

	waitFor(t, 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(filtered) > 0 && len(tailLines) >= countFindings(feed) && len(ocsfLines) >= countFindings(feed) && countFindings(feed) > 0
	})
	time.Sleep(3 * time.Second) // late arrivals would show up as extra findings
	mu.Lock()
	defer mu.Unlock()

	// Exactly the feed's findings from the target container at high or above.
	var want []string
	for _, ev := range feed {
		if ev.Kind == event.KindFinding && ev.Container != nil && ev.Container.ID == target && ev.Finding.Severity >= event.SevHigh {
			want = append(want, fmt.Sprintf("%d %s", ev.Seq, ev.Finding.Rule))
		}
	}
	var got []string
	for _, ev := range filtered {
		if ev.Kind != event.KindFinding {
			continue // heartbeats and lost records are not findings
		}
		got = append(got, fmt.Sprintf("%d %s", ev.Seq, ev.Finding.Rule))
	}
	if len(want) == 0 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("filtered subscriber got %v; want %v", got, want)
	}
	hasESC004 := false
	for _, g := range got {
		hasESC004 = hasESC004 || strings.HasSuffix(g, " ESC-004")
	}
	if !hasESC004 {
		t.Errorf("the nsfs open of /proc/1/ns/net from %s did not raise ESC-004: %v", target, got)
	}

	// --tail attached to the daemon shows what the daemon's feed shows.
	var fromFeed, fromTail []string
	for _, ev := range feed {
		if ev.Kind == event.KindFinding {
			fromFeed = append(fromFeed, fmt.Sprintf("%d %s", ev.Seq, ev.Finding.Rule))
		}
	}
	for _, m := range tailLines {
		seq, _ := m["seq"].(float64)
		fromTail = append(fromTail, fmt.Sprintf("%d %s", uint64(seq), m["rule"]))
	}
	sort.Strings(fromFeed)
	sort.Strings(fromTail)
	if fmt.Sprint(fromFeed) != fmt.Sprint(fromTail) {
		t.Fatalf("sensor --tail showed %v; the daemon's feed %v", fromTail, fromFeed)
	}
	t.Logf("filtered: %v; feed and tail: %d findings", got, len(fromFeed))
	if len(ocsfLines) != len(fromFeed) {
		t.Errorf("sensor --tail -o ocsf printed %d lines; the feed has %d findings", len(ocsfLines), len(fromFeed))
	}
	checkOCSFFile(t, ocsfFile, ocsfLines)

	// The daemon's Prometheus endpoint counts what the feed carried.
	m := scrapeMetrics(t, metricsAddr)
	var findings float64
	for k, v := range m {
		if strings.HasPrefix(k, "kestrel_findings_total{") {
			findings += v
		}
	}
	if findings < float64(len(fromFeed)) {
		t.Errorf("kestrel_findings_total sums to %v; the feed carried %d findings", findings, len(fromFeed))
	}
	if !slices.ContainsFunc(slices.Collect(maps.Keys(m)), func(k string) bool {
		return strings.HasPrefix(k, `kestrel_findings_total{rule="ESC-004",`)
	}) {
		t.Errorf("no kestrel_findings_total series for ESC-004")
	}
	if m[`kestrel_events_total{kind="exec"}`] == 0 || m["kestrel_export_subscribers"] < 3 || m["kestrel_bpf_programs_attached"] == 0 {
		t.Errorf("exec events %v, subscribers %v (two streams and --tail), programs %v: want all above 0, 3",
			m[`kestrel_events_total{kind="exec"}`], m["kestrel_export_subscribers"], m["kestrel_bpf_programs_attached"])
	}
}

// freeLoopbackAddr returns a loopback address nothing listens on now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// scrapeMetrics returns the samples of a Prometheus text page by series.
func scrapeMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape the daemon's metrics: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

func countFindings(evs []*event.Event) int {
	n := 0
	for _, ev := range evs {
		if ev.Kind == event.KindFinding {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type safeBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
