package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// burstEnv sets the number of containers TestBurstOfNewContainers creates
// at once (default 10), e.g. KESTREL_E2E_BURST=100.
const burstEnv = "KESTREL_E2E_BURST"

// TestBurstOfNewContainers runs the sensor binary as deploy/daemonset.yaml
// runs it: the manifest's capability set and no-new-privs, in a cgroup of
// its own under the v2 hierarchy with its own cgroup namespace (so that
// /proc/<pid>/cgroup paths read "/../…" to it), in its own mount namespace
// without tracefs. Then it creates a burst of brand-new simulated
// containers at once (containerd scope cgroups under kubepods pod slices,
// unshare'd namespaces), each running one short-lived process that opens
// /proc/sys/kernel/core_pattern for writing (and writes nothing), and
// requires one ESC-002 finding per container, attributed to that container:
// its id, runtime and pod UID.
func TestBurstOfNewContainers(t *testing.T) {
	needRoot(t)
	requireTools(t, "sh", "unshare", "setpriv", "umount")
	n := 10
	if v := os.Getenv(burstEnv); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 1000 {
			t.Fatalf("%s=%q: want a number of containers from 1 to 1000", burstEnv, v)
		}
	}
	root := v2Root(t)
	dir := t.TempDir()
	bin := buildSensor(t, dir)
	cfg := filepath.Join(dir, "sensor.yaml")
	if err := os.WriteFile(cfg, []byte("log_level: warn\ncontext:\n  cri_socket: \"off\"\ngpu:\n  source: \"off\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pod := readManifest(t)

	s := startPodSensor(t, bin, cfg, root, pod)

	ctrs := burst(t, root, n)
	start := time.Now()
	got := s.waitFindings(t, len(ctrs), 30*time.Second, func(f burstFinding) bool { return f.Rule == "ESC-002" })
	elapsed := time.Since(start)
	byID := map[string]burstFinding{}
	for _, f := range got {
		if f.Container != nil {
			byID[f.Container.ID] = f
		}
	}
	var missing []string
	for _, c := range ctrs {
		f, ok := byID[c.id]
		switch {
		case !ok:
			missing = append(missing, c.id[:12])
		case f.Container.Runtime != "containerd" || f.Container.PodUID != c.podUID:
			t.Errorf("container %s…: finding has runtime %q pod UID %q; want containerd, %s", c.id[:12], f.Container.Runtime, f.Container.PodUID, c.podUID)
		}
	}
	t.Logf("%d/%d brand-new containers attributed in their ESC-002 finding (%d ESC-002 findings in all, %v from the end of the burst to the last)",
		len(ctrs)-len(missing), len(ctrs), len(got), elapsed.Round(time.Millisecond))
	if len(missing) > 0 {
		ours := map[string]bool{}
		for _, c := range ctrs {
			ours[c.id] = true
		}
		var other []string
		for _, f := range got {
			switch {
			case f.Container == nil:
				other = append(other, "host")
			case !ours[f.Container.ID]:
				other = append(other, f.Container.ID)
			}
		}
		t.Fatalf("%d of %d containers have no attributed finding (%v); ESC-002 findings attributed elsewhere: %v\nsensor stderr:\n%s",
			len(missing), len(ctrs), missing, other, s.stderr.String())
	}
}

// v2Root returns the mount point of the cgroup v2 hierarchy's root.
func v2Root(t *testing.T) string {
	t.Helper()
	for _, root := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join(root, "cgroup.procs"), &st) == nil && syscall.Stat(root, &st) == nil && st.Ino == 1 {
			return root
		}
	}
	t.Skip("no cgroup v2 hierarchy root at /sys/fs/cgroup{,/unified}")
	return ""
}

// podSpec is what the test takes from the DaemonSet's sensor container.
type podSpec struct {
	caps       []string // capability names as setpriv spells them (bpf, net_admin)
	noNewPrivs bool
	uid        int64
}

// readManifest parses deploy/daemonset.yaml with the Kubernetes API types.
func readManifest(t *testing.T) podSpec {
	t.Helper()
	raw, err := os.ReadFile("../../deploy/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
		var meta struct{ Kind string }
		if yaml.Unmarshal(doc, &meta) != nil || meta.Kind != "DaemonSet" {
			continue
		}
		var ds appsv1.DaemonSet
		if err := yaml.UnmarshalStrict(doc, &ds); err != nil {
			t.Fatalf("parse the DaemonSet: %v", err)
		}
		var c *corev1.Container
		for i := range ds.Spec.Template.Spec.Containers {
			if ds.Spec.Template.Spec.Containers[i].Name == "sensor" {
				c = &ds.Spec.Template.Spec.Containers[i]
			}
		}
		if c == nil || c.SecurityContext == nil || c.SecurityContext.Capabilities == nil {
			t.Fatal("the DaemonSet has no sensor container with a capability set")
		}
		if !ds.Spec.Template.Spec.HostPID {
			t.Fatal("the DaemonSet is not hostPID: the test runs the sensor in the host's PID namespace")
		}
		sc := c.SecurityContext
		var ps podSpec
		for _, d := range sc.Capabilities.Drop {
			if d != "ALL" {
				t.Fatalf("the test expects drop: [ALL], got %v", sc.Capabilities.Drop)
			}
		}
		for _, a := range sc.Capabilities.Add {
			ps.caps = append(ps.caps, strings.ToLower(strings.TrimPrefix(string(a), "CAP_")))
		}
		ps.noNewPrivs = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
		if sc.Privileged != nil && *sc.Privileged {
			t.Fatal("the sensor container is privileged: there is nothing to test")
		}
		if sc.RunAsUser != nil {
			ps.uid = *sc.RunAsUser
		}
		return ps
	}
	t.Fatal("deploy/daemonset.yaml has no DaemonSet")
	return podSpec{}
}

// capMask is the capability bit mask of setpriv-style names.
func capMask(t *testing.T, names []string) uint64 {
	bits := map[string]uint{"dac_read_search": 2, "net_admin": 12, "sys_ptrace": 19, "sys_admin": 21,
		"sys_resource": 24, "perfmon": 38, "bpf": 39, "chown": 0, "dac_override": 1, "fowner": 3, "kill": 5,
		"setgid": 6, "setuid": 7, "net_bind_service": 10, "net_raw": 13, "ipc_lock": 14, "sys_chroot": 18, "mknod": 27}
	var m uint64
	for _, n := range names {
		b, ok := bits[n]
		if !ok {
			t.Fatalf("capability %q: add its bit to capMask", n)
		}
		m |= 1 << b
	}
	return m
}

type burstFinding struct {
	Kind      string `json:"kind"`
	Rule      string `json:"rule"`
	Ready     *bool  `json:"ready"`
	Container *struct {
		ID      string `json:"id"`
		Runtime string `json:"runtime"`
		PodUID  string `json:"pod_uid"`
	} `json:"container"`
	// What the flood test reads too.
	Process *struct {
		PID  uint32 `json:"pid"`
		Comm string `json:"comm"`
	} `json:"process"`
	Severity    string            `json:"severity"`
	Explanation string            `json:"explanation"`
	Count       int               `json:"count"`
	Attrs       map[string]string `json:"attrs"`
	Source      string            `json:"source"`
	CountLost   uint64            `json:"count_lost"`
}

// podSensor is the sensor running as in the pod.
type podSensor struct {
	cmd    *exec.Cmd
	stderr safeBuffer
	mu     sync.Mutex
	lines  []burstFinding
	// readyLine is the first line, the status that says every program
	// is attached.
	readyLine string
	more      chan struct{} // signalled on every line
	done      chan struct{}
}

// waitFindings waits, woken by every line the sensor prints, until want
// findings matching keep have arrived or timeout passes.
func (s *podSensor) waitFindings(t *testing.T, want int, timeout time.Duration, keep func(burstFinding) bool) []burstFinding {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		var got []burstFinding
		for _, f := range s.lines {
			if f.Kind == "finding" && keep(f) {
				got = append(got, f)
			}
		}
		s.mu.Unlock()
		if len(got) >= want {
			return got
		}
		select {
		case <-s.more:
		case <-s.done:
			t.Fatalf("sensor exited: %s", s.stderr.String())
		case <-deadline:
			return got
		}
	}
}

// startPodSensor starts the sensor as the pod runs it, printing findings
// and status, and waits until it is ready.
func startPodSensor(t *testing.T, bin, cfg, root string, pod podSpec) *podSensor {
	t.Helper()
	return startPodSensorKinds(t, bin, cfg, root, pod, "finding,status")
}

// startPodSensorKinds is startPodSensor printing the event kinds listed.
func startPodSensorKinds(t *testing.T, bin, cfg, root string, pod podSpec, kinds string) *podSensor {
	t.Helper()
	bounding := "-all"
	for _, c := range pod.caps {
		bounding += ",+" + c
	}
	// The pod's container cgroup, then its own cgroup and mount namespaces
	// (unshare without --fork: the pid stays the sensor's), without tracefs.
	// Where the runtime mounts cgroup2 for a container is the namespace's
	// own view (its root is the sensor's cgroup), listed first in
	// mountinfo as runc mounts it first; the host's hierarchy is a
	// hostPath elsewhere, mounted after it.
	cg := filepath.Join(root, fmt.Sprintf("kestrel-e2e-sensor-%d", os.Getpid()))
	hostCg := filepath.Join(t.TempDir(), "host", "sys", "fs", "cgroup")
	if err := os.Mkdir(cg, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
	priv := []string{"--reuid", strconv.FormatInt(pod.uid, 10), "--inh-caps", "-all", "--bounding-set", bounding}
	if pod.noNewPrivs {
		priv = append(priv, "--no-new-privs")
	}
	script := `echo $$ > "$1/cgroup.procs" || exit 1
shift
exec unshare --cgroup --mount --propagation private sh -c '
set -e
root=$1 host=$2
shift 2
for m in /sys/kernel/tracing /sys/kernel/debug/tracing; do umount -l "$m" 2>/dev/null || true; done
if grep -q " - tracefs " /proc/self/mountinfo; then echo "tracefs still mounted" >&2; exit 1; fi
mkdir -p "$host.hold" "$host"
mount --bind "$root" "$host.hold"
umount -l "$root"
mount -t cgroup2 cgroup2 "$root"
mount --bind "$host.hold" "$host"
umount -l "$host.hold"
exec setpriv "$@"' sh "$@"`
	args := append([]string{"-c", script, "sh", cg, root, hostCg}, priv...)
	args = append(args, bin, "--tail", "--in-process", "-o", "json", "--kind", kinds, "--config", cfg)
	s := &podSensor{cmd: exec.Command("sh", args...), more: make(chan struct{}, 1), done: make(chan struct{})}
	s.cmd.Stderr = &s.stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start sensor: %v", err)
	}
	ready := make(chan struct{})
	go s.read(out, ready)
	stop := func() {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
		}
		_ = s.cmd.Wait()
		rmCgroup(cg)
	}
	t.Cleanup(stop)
	select {
	case <-ready:
	case <-s.done:
		t.Fatalf("sensor exited before it was ready: %s", s.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("sensor not ready after 60s: %s", s.stderr.String())
	}
	t.Logf("sh %s\n%s", strings.Join(args, " "), s.readyLine)
	s.checkConfinement(t, root, cg, hostCg, pod.caps, pod.noNewPrivs)
	attachedAtRoot(t, s.cmd.Process.Pid)
	return s
}

func (s *podSensor) read(r io.Reader, ready chan<- struct{}) {
	defer close(s.done)
	var once sync.Once
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var f burstFinding
		if json.Unmarshal(sc.Bytes(), &f) != nil {
			continue
		}
		s.mu.Lock()
		s.lines = append(s.lines, f)
		s.mu.Unlock()
		if f.Kind == "status" && f.Ready != nil && *f.Ready {
			once.Do(func() {
				s.mu.Lock()
				s.readyLine = sc.Text()
				s.mu.Unlock()
				close(ready)
			})
		}
		select {
		case s.more <- struct{}{}:
		default:
		}
	}
}

// checkConfinement checks, from outside, that the running sensor has the
// capability set, no-new-privs, its own cgroup and cgroup namespace, and a
// mount namespace without tracefs where the host's hierarchy is elsewhere.
func (s *podSensor) checkConfinement(t *testing.T, root, cg, hostCg string, caps []string, noNewPrivs bool) {
	t.Helper()
	pid := s.cmd.Process.Pid
	eff, _ := strconv.ParseUint(statusField(t, pid, "CapEff"), 16, 64)
	// A capability this machine's root lacks cannot be granted; the pod
	// would have it.
	bnd, _ := strconv.ParseUint(statusField(t, os.Getpid(), "CapBnd"), 16, 64)
	want := capMask(t, caps)
	if want&^bnd != 0 {
		t.Logf("this machine's root lacks capabilities %#x of the manifest's set", want&^bnd)
	}
	if want &= bnd; eff != want {
		t.Errorf("sensor CapEff %#x; want %#x (%v)", eff, want, caps)
	}
	if nnp := statusField(t, pid, "NoNewPrivs"); noNewPrivs && nnp != "1" {
		t.Errorf("sensor NoNewPrivs %q; want 1", nnp)
	}
	own, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/cgroup", pid))
	mine, _ := os.Readlink("/proc/self/ns/cgroup")
	if own == "" || own == mine {
		t.Errorf("sensor cgroup namespace %q; want its own (the test's is %q)", own, mine)
	}
	cgf, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	v2 := "0::" + strings.TrimPrefix(cg, root)
	if !strings.Contains(string(cgf), v2+"\n") {
		t.Errorf("sensor cgroup %q; want %s", cgf, cg)
	}
	mi, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if strings.Contains(string(mi), " - tracefs ") {
		t.Error("tracefs is mounted in the sensor's mount namespace")
	}
	for _, point := range []string{root, hostCg} {
		if !strings.Contains(string(mi), " "+point+" ") {
			t.Errorf("no cgroup2 mount at %s in the sensor's mount namespace:\n%s", point, mi)
		}
	}
	t.Logf("sensor pid %d: CapEff %#x NoNewPrivs %s; cgroup %s, its namespace %s (the test's %s); cgroup2 mounts at %s (its namespace's view) and %s (the host's); tracefs mounted: no",
		pid, eff, statusField(t, pid, "NoNewPrivs"), v2, own, mine, root, hostCg)
}

// statusField returns a field of /proc/<pid>/status.
func statusField(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

type burstContainer struct {
	id, podUID string
	cg         string
}

// burst creates n containers at once and runs one short-lived process in
// each; it returns when all have exited.
func burst(t *testing.T, root string, n int) []burstContainer {
	t.Helper()
	ctrs := make([]burstContainer, n)
	// Parents shared by every container: made (or found) first, removed
	// last if this test made them.
	parents := []string{filepath.Join(root, "kubepods.slice"), filepath.Join(root, "kubepods.slice", "kubepods-besteffort.slice")}
	for _, p := range parents {
		if err := os.Mkdir(p, 0o755); err == nil {
			t.Cleanup(func() { rmCgroup(p) })
		} else if !errors.Is(err, os.ErrExist) {
			t.Fatal(err)
		}
	}
	for i := range ctrs {
		h := randHex(16)
		c := &ctrs[i]
		c.id = randHex(32)
		c.podUID = h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
		podDir := filepath.Join(parents[1], "kubepods-besteffort-pod"+strings.ReplaceAll(c.podUID, "-", "_")+".slice")
		c.cg = filepath.Join(podDir, "cri-containerd-"+c.id+".scope")
		t.Cleanup(func() { rmCgroup(c.cg); rmCgroup(podDir) })
	}
	corePattern, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if now, _ := os.ReadFile("/proc/sys/kernel/core_pattern"); !bytes.Equal(now, corePattern) {
			t.Errorf("core_pattern changed to %q; restoring %q", now, corePattern)
			_ = os.WriteFile("/proc/sys/kernel/core_pattern", corePattern, 0o644)
		}
	})
	// Each container: its pod and scope cgroups made at the same moment as
	// the others', then a process placed in it that unshares namespaces
	// and opens core_pattern for writing (">>" writes nothing).
	const script = `mkdir -p "$1" && echo $$ > "$1/cgroup.procs" && exec unshare --mount --pid --uts --ipc --net --fork sh -c 'exec 3>>/proc/sys/kernel/core_pattern'`
	var wg sync.WaitGroup
	errs := make([]error, n)
	gate := make(chan struct{})
	for i := range ctrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			if out, err := exec.Command("sh", "-c", script, "sh", ctrs[i].cg).CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("container %d: %v: %s", i, err, out)
			}
		}()
	}
	close(gate)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return ctrs
}

// rmCgroup removes a cgroup directory once the kernel has emptied it.
func rmCgroup(dir string) {
	for deadline := time.Now().Add(5 * time.Second); ; {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// attachedAtRoot checks, from the sensor's link fds, that its cgroup
// programs (connect, sock_release) are attached to the root of the
// hierarchy, cgroup 1, where they see every process, and not to the
// sensor's own cgroup, the root of its namespace's cgroup2 view.
func attachedAtRoot(t *testing.T, pid int) {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	links := 0
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || !strings.Contains(string(b), "link_type:\tcgroup\n") {
			continue
		}
		links++
		if !strings.Contains(string(b), "cgroup_id:\t1\n") {
			t.Errorf("a cgroup link of the sensor is not on the hierarchy's root (cgroup 1):\n%s", b)
		}
	}
	if links == 0 {
		t.Error("the sensor holds no cgroup link")
	}
}
