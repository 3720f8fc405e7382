package runtime

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// deployedCaps is the capability set deploy/daemonset.yaml grants the
// sensor (test/e2e's burst test reads it from the manifest itself).
const deployedCaps = "bpf,perfmon,net_admin,sys_ptrace,dac_read_search"

var capBits = map[string]int{
	"bpf": unix.CAP_BPF, "perfmon": unix.CAP_PERFMON, "net_admin": unix.CAP_NET_ADMIN,
	"sys_ptrace": unix.CAP_SYS_PTRACE, "dac_read_search": unix.CAP_DAC_READ_SEARCH,
}

// modelEnv passes the stage-2 child a watched file to open.
const modelEnv = "KESTREL_TEST_MODEL"

// deployedStage1 runs in a fresh mount and cgroup namespace: it unmounts
// tracefs there, drops every capability but caps from the bounding set,
// empties the inheritable set and sets no_new_privs, as
// `setpriv --bounding-set -all,+... --inh-caps -all --no-new-privs` does,
// and execs stage 2. As uid 0, the exec leaves exactly the bounding set
// permitted and effective.
func deployedStage1(caps, mode string) int {
	runtime.LockOSThread() // the bounding set is per thread: drop and exec on one
	for _, p := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		for unix.Unmount(p, unix.MNT_DETACH) == nil {
		}
	}
	keep := map[int]bool{}
	for _, c := range strings.Split(caps, ",") {
		bit, ok := capBits[c]
		if !ok {
			fmt.Println("unknown capability", c)
			return 2
		}
		keep[bit] = true
	}
	for c := 0; c < 64; c++ {
		if !keep[c] {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
				fmt.Println("drop capability", c, err)
				return 1
			}
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		fmt.Println("capget:", err)
		return 1
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		fmt.Println("capset:", err)
		return 1
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Println("no_new_privs:", err)
		return 1
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, helperEnv+"=") })
	err := unix.Exec("/proc/self/exe", os.Args, append(env, helperEnv+"=deployed2"))
	fmt.Println("exec stage 2:", err)
	return 1
}

// deployedStage2 reports its capabilities and tracefs mounts, then probes
// (mode "probe") or loads the sensor, checks that an open of a watched
// file is seen, and closes it (mode "load").
func deployedStage2(mode string) int {
	status, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "CapEff:") || strings.HasPrefix(l, "CapInh:") || strings.HasPrefix(l, "NoNewPrivs:") {
			fmt.Println(strings.Join(strings.Fields(l), " "))
		}
	}
	fmt.Println("tracefs:", tracefsMounts())
	if err := CheckPrivileges(); err != nil {
		fmt.Println("check:", err)
		return 0
	}
	fmt.Println("check: ok")
	if mode != "load" {
		return 0
	}
	s, err := Load(testConfig(), nil)
	if err != nil {
		fmt.Println("load:", err)
		return 0
	}
	defer s.Close()
	fmt.Println("attached:", strings.Join(s.Programs(), ","))
	fmt.Println("not_frozen:", s.Counters()["maps_not_frozen"])
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, c.emit) }()
	model := os.Getenv(modelEnv)
	cat := exec.Command("/bin/cat", model)
	if out, err := cat.CombinedOutput(); err != nil {
		fmt.Printf("cat: %v: %s\n", err, out)
		return 1
	}
	deadline := time.Now().Add(5 * time.Second)
	var seen *event.Event
	for seen == nil && time.Now().Before(deadline) {
		seen = c.find(openBy(cat.Process.Pid, model))
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		fmt.Println("run:", err)
	}
	if seen != nil {
		fmt.Println("open:", seen.File.Path, seen.File.Result)
	} else {
		fmt.Println("open: not seen")
	}
	return 0
}

// tracefsMounts lists this mount namespace's tracefs mounts.
func tracefsMounts() string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var at []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, _ := strings.Cut(sc.Text(), " - ")
		if strings.HasPrefix(post, "tracefs ") {
			if fields := strings.Fields(pre); len(fields) > 4 {
				at = append(at, fields[4])
			}
		}
	}
	if len(at) == 0 {
		return "none"
	}
	return strings.Join(at, " ")
}

// runDeployed runs the two-stage child with caps in its own mount and
// cgroup namespace and returns its output lines by key.
func runDeployed(t *testing.T, caps, mode, model string) map[string]string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$", caps, mode)
	cmd.Env = append(os.Environ(), helperEnv+"=deployed", modelEnv+"="+model)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWCGROUP}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(l, ":")
		got[k] = strings.TrimSpace(v)
	}
	t.Logf("child (%s):\n%s", caps, out)
	return got
}

// TestLoadWithDeployedCapabilities loads and attaches the real collection
// with exactly the DaemonSet's capabilities, no tracefs mounted and its own
// mount and cgroup namespace, and sees an open through it. Without
// CAP_PERFMON, CheckPrivileges names what the kernel refuses and why.
func TestLoadWithDeployedCapabilities(t *testing.T) {
	requireKernel(t)
	var bounding uint64
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			bounding, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	wantEff := func(caps string) uint64 {
		var m uint64
		for _, c := range strings.Split(caps, ",") {
			m |= 1 << capBits[c]
		}
		return m & bounding
	}
	model := filepath.Join(t.TempDir(), "weights.safetensors")
	if err := os.WriteFile(model, []byte("w"), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("deployed set", func(t *testing.T) {
		got := runDeployed(t, deployedCaps, "load", model)
		if eff := fmt.Sprintf("%016x", wantEff(deployedCaps)); got["CapEff"] != eff || got["CapInh"] != "0000000000000000" ||
			got["NoNewPrivs"] != "1" {
			t.Fatalf("child CapEff %s CapInh %s NoNewPrivs %s; want %s, 0, 1", got["CapEff"], got["CapInh"], got["NoNewPrivs"], eff)
		}
		if got["tracefs"] != "none" {
			t.Fatalf("tracefs still mounted in the child at %s", got["tracefs"])
		}
		if got["check"] != "ok" {
			t.Fatalf("CheckPrivileges: %s", got["check"])
		}
		spec, err := loadSensor()
		if err != nil {
			t.Fatal(err)
		}
		attached := strings.Split(got["attached"], ",")
		for name := range spec.Programs {
			if !slices.Contains(attached, name) && !strings.HasSuffix(name, optionalSuffix) {
				t.Errorf("program %s neither attached nor dispatched (load: %s)", name, got["load"])
			}
		}
		if path, res, _ := strings.Cut(got["open"], " "); path != model || strings.HasPrefix(res, "-") {
			t.Errorf("open through the dispatcher: %q; want %s and an fd", got["open"], model)
		}
		// The deployed capabilities suffice to freeze every map.
		if got["not_frozen"] != "0" {
			t.Errorf("%s maps left writable with the deployed capabilities", got["not_frozen"])
		}
	})

	t.Run("without CAP_PERFMON", func(t *testing.T) {
		caps := strings.Replace(deployedCaps, "perfmon,", "", 1)
		got := runDeployed(t, caps, "probe", model)
		for _, want := range []string{"Tracing program", "CAP_PERFMON", "lacks CAP_PERFMON", "tracing programs"} {
			if !strings.Contains(got["check"], want) {
				t.Errorf("CheckPrivileges without CAP_PERFMON: %q; want it to say %q", got["check"], want)
			}
		}
	})
}
