package runtime

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// unusedUID is the uid the kill(-1) helper drops to: kill(-1) then reaches
// only processes whose real or saved uid is this one (the test process,
// which takes it as its saved uid meanwhile), not the rest of the host.
const unusedUID = 0x7ead0ffe

// runSignalHelper sends SIGURG (which a Go program takes in its stride) to
// the test process args[1] by the path args[0], or stops it ("stop:<how
// long>"), and prints the error; or, for "map", tampers with maps as
// args[1] lists them ("<id>:update,<id>:delete,...") and prints one error
// per map. (The helper gets two arguments.)
func runSignalHelper(args []string) int {
	path, param, _ := strings.Cut(args[0], ":")
	pid, _ := strconv.Atoi(args[1])
	sig := unix.SIGURG
	info := func() unsafe.Pointer {
		// A siginfo of SI_QUEUE, what sigqueue(3) sends: the kernel refuses
		// kernel codes (>= 0) and SI_TKILL from another process.
		var si [128]byte
		*(*int32)(unsafe.Pointer(&si[0])) = int32(sig)
		*(*int32)(unsafe.Pointer(&si[8])) = -1 // SI_QUEUE
		*(*int32)(unsafe.Pointer(&si[16])) = int32(os.Getpid())
		return unsafe.Pointer(&si[0])
	}
	var err error
	sys := func(nr uintptr, a ...uintptr) {
		a = append(a, 0, 0, 0, 0)
		if _, _, e := unix.Syscall6(nr, a[0], a[1], a[2], a[3], 0, 0); e != 0 {
			err = e
		}
	}
	switch path {
	case "kill":
		err = unix.Kill(pid, sig)
	case "tkill":
		sys(unix.SYS_TKILL, uintptr(pid), uintptr(sig))
	case "tgkill":
		err = unix.Tgkill(pid, pid, sig)
	case "rt_sigqueueinfo":
		sys(unix.SYS_RT_SIGQUEUEINFO, uintptr(pid), uintptr(sig), uintptr(info()))
	case "rt_tgsigqueueinfo":
		sys(unix.SYS_RT_TGSIGQUEUEINFO, uintptr(pid), uintptr(pid), uintptr(sig), uintptr(info()))
	case "pidfd_send_signal":
		var fd int
		if fd, err = unix.PidfdOpen(pid, 0); err == nil {
			err = unix.PidfdSendSignal(fd, sig, nil, 0)
		}
	case "process_group":
		var pgid int
		if pgid, err = unix.Getpgid(pid); err == nil {
			err = unix.Kill(-pgid, sig)
		}
	case "all": // kill(-1), as unusedUID: see there
		if err = syscall.Setresgid(unusedUID, unusedUID, unusedUID); err == nil {
			if err = syscall.Setresuid(unusedUID, unusedUID, unusedUID); err == nil {
				err = unix.Kill(-1, sig)
			}
		}
	case "ptrace": // the SIGSTOP of PTRACE_ATTACH, then let go at once
		goruntime.LockOSThread()
		if err = unix.PtraceAttach(pid); err == nil {
			var ws unix.WaitStatus
			_, err = unix.Wait4(pid, &ws, unix.WALL, nil)
			if derr := unix.PtraceDetach(pid); err == nil {
				err = derr
			}
		}
	case "stop": // SIGSTOP, hold until the target is stopped plus param, SIGCONT
		hold, _ := time.ParseDuration(param)
		if err = unix.Kill(pid, unix.SIGSTOP); err != nil {
			break
		}
		defer unix.Kill(pid, unix.SIGCONT) // whatever happens, never leave it stopped
		for deadline := time.Now().Add(5 * time.Second); !processStopped(pid); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				err = fmt.Errorf("process %d did not stop", pid)
				break
			}
		}
		time.Sleep(hold) // the stop itself is what is tested
		err = unix.Kill(pid, unix.SIGCONT)
	case "map":
		var errs []string
		for _, op := range strings.Split(args[1], ",") {
			id, what, _ := strings.Cut(op, ":")
			errs = append(errs, fmt.Sprint(tamperMap(id, what)))
		}
		fmt.Println(strings.Join(errs, "\n"))
		return 0
	default:
		fmt.Fprintln(os.Stderr, "unknown signal helper", path)
		return 2
	}
	fmt.Println(err)
	return 0
}

// processStopped reads the state letter of /proc/<pid>/stat.
func processStopped(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'T'
}

// tamperMap does what an attacker does with a map id found in fdinfo:
// BPF_MAP_GET_FD_BY_ID, then BPF_MAP_UPDATE_ELEM or BPF_MAP_DELETE_ELEM on
// its first key.
func tamperMap(idArg, op string) error {
	id, err := strconv.ParseUint(idArg, 10, 32)
	if err != nil {
		return err
	}
	m, err := ebpf.NewMapFromID(ebpf.MapID(id))
	if err != nil {
		return fmt.Errorf("get map %d: %w", id, err)
	}
	defer m.Close()
	if m.Type() == ebpf.PerCPUArray {
		return m.Update(uint32(0), make([]uint64, ebpf.MustPossibleCPU()), ebpf.UpdateAny)
	}
	var k, v []byte
	it := m.Iterate()
	if !it.Next(&k, &v) {
		return fmt.Errorf("map %d is empty: %v", id, it.Err())
	}
	if op == "delete" {
		return m.Delete(k)
	}
	for i := range v {
		v[i] ^= 0xff
	}
	return m.Update(k, v, ebpf.UpdateAny)
}

// inContainer builds a container as the tests here do (a cgroup v2
// directory and unshare'd mount, UTS, IPC and network namespaces), but in
// the host's PID namespace, like a hostPID pod: it sees the sensor. It
// returns the command line prefix and the cgroup's id.
func inContainer(t *testing.T) ([]string, uint64) {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not installed")
	}
	root, err := cgroupV2Root("/proc/self/mountinfo")
	if err != nil {
		t.Skipf("no cgroup v2 hierarchy: %v", err)
	}
	cg := filepath.Join(root, fmt.Sprintf("kestrel-self-test-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(cg) })
	var st unix.Stat_t
	if err := unix.Stat(cg, &st); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	return []string{"unshare", "--mount", "--uts", "--ipc", "--net", "--", "/bin/sh", "-c",
		`echo $$ > "$1/cgroup.procs" && shift 2 && exec "$0" -test.run='^$' "$@"`, self, cg}, st.Ino
}

// runIn runs the signal helper with args in prefix (a container, or
// nothing) and returns its pid and output.
func runIn(t *testing.T, prefix []string, args ...string) (uint32, string) {
	t.Helper()
	var cmd *exec.Cmd
	if prefix == nil {
		self, _ := os.Executable()
		cmd = exec.Command(self, append([]string{"-test.run=^$"}, args...)...)
	} else {
		cmd = exec.Command(prefix[0], append(append(prefix[1:], "x"), args...)...)
	}
	cmd.Env = append(os.Environ(), helperEnv+"=signal")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper %v: %v: %s", args, err, out)
	}
	return uint32(cmd.Process.Pid), strings.TrimSpace(string(out))
}

func signalFrom(pid uint32, sig int) func(*event.Event) bool {
	return func(e *event.Event) bool {
		return e.Kind == event.KindSyscall && e.Sys.Name == event.SyscallSignal && e.Process.PID == pid &&
			e.Sys.Flags == uint64(sig)
	}
}

// TestSelfProtection runs the attacks of a privileged hostPID container on
// one protected sensor (maps frozen, objects checked every 50ms, gaps from
// 300ms): every signal path, a stop, raw map updates by id, a link detach.
func TestSelfProtection(t *testing.T) {
	defer func(g time.Duration) { minGap = g }(minGap)
	minGap = 300 * time.Millisecond
	s, c := protectedSensor(t, netConfig(), true)
	ctr, cgid := inContainer(t)
	self := strconv.Itoa(os.Getpid())

	// Every way of signalling a process reaches the one signal_generate
	// program, with the sender's identity (pid, cgroup), the signal and the
	// syscall it came by.
	t.Run("signals", func(t *testing.T) {
		for _, tt := range []struct {
			path      string
			container bool
			sig       int
			via       string // the syscall, on amd64
		}{
			{"kill", true, int(unix.SIGURG), "kill"},
			{"tkill", true, int(unix.SIGURG), "tkill"},
			{"tgkill", true, int(unix.SIGURG), "tgkill"},
			{"rt_sigqueueinfo", true, int(unix.SIGURG), "rt_sigqueueinfo"},
			{"rt_tgsigqueueinfo", true, int(unix.SIGURG), "rt_tgsigqueueinfo"},
			{"pidfd_send_signal", true, int(unix.SIGURG), "pidfd_send_signal"},
			{"process_group", true, int(unix.SIGURG), "kill"},
			{"all", false, int(unix.SIGURG), "kill"},
			{"ptrace", true, int(unix.SIGSTOP), "ptrace"},
		} {
			t.Run(tt.path, func(t *testing.T) {
				prefix := ctr
				if !tt.container {
					prefix = nil
				}
				if tt.path == "all" {
					// Let the helper's uid reach us, and only us.
					if err := syscall.Setresuid(-1, -1, unusedUID); err != nil {
						t.Fatalf("take saved uid: %v", err)
					}
					defer syscall.Setresuid(-1, -1, 0)
				}
				pid, out := runIn(t, prefix, tt.path, self)
				if out != "<nil>" {
					t.Fatalf("helper: %s", out)
				}
				e := c.wait(t, tt.path+" signal", signalFrom(pid, tt.sig))
				sy := e.Sys
				if tt.container && e.Process.CgroupID != cgid {
					t.Errorf("sender cgroup %d; want the container's %d", e.Process.CgroupID, cgid)
				}
				if sy.Target == 0 || sy.Ret < 0 {
					t.Errorf("target %d, result %d", sy.Target, sy.Ret)
				}
				if goruntime.GOARCH == "amd64" && !strings.HasSuffix(sy.Arg, " via "+tt.via) {
					t.Errorf("arg %q; want it to end in via %s", sy.Arg, tt.via)
				}
				t.Logf("%s from pid %d (%s), si_code %d, group %d", sy.Arg, e.Process.PID, e.Process.Comm, sy.Fd, sy.Fd2)
			})
		}
	})

	// SIGSTOP, then SIGCONT: the stop is in the ring buffer before it
	// lands; after resuming, the reader reports the gap it saw.
	t.Run("stop", func(t *testing.T) {
		start := time.Now()
		pid, out := runIn(t, ctr, "stop:600ms", self)
		if out != "<nil>" {
			t.Fatalf("helper: %s", out)
		}
		stop := c.wait(t, "SIGSTOP", signalFrom(pid, int(unix.SIGSTOP)))
		c.wait(t, "SIGCONT", signalFrom(pid, int(unix.SIGCONT)))
		gap := c.wait(t, "gap", func(e *event.Event) bool {
			return e.Kind == event.KindStatus && e.Status.Fields[event.FieldSelfCheck] == event.SelfCheckGap &&
				e.Time.After(stop.Time)
		})
		if c := gap.Status.Fields["cause"]; c != event.GapStopped {
			t.Errorf("gap cause %q; want %s", c, event.GapStopped)
		}
		ms, _ := strconv.Atoi(gap.Status.Fields["gap_ms"])
		// The reader's last tick before the stop may precede start by a
		// poll interval.
		if ms < 600 || time.Duration(ms)*time.Millisecond > time.Since(start)+100*time.Millisecond {
			t.Errorf("gap %d ms; want at least the 600 ms stop, at most the test's %s", ms, time.Since(start))
		}
		t.Logf("%s; %s", stop.Sys.Arg, gap.Status.Message)
	})

	// With the map ids an attacker reads in /proc/<sensor>/fdinfo, raw
	// bpf(2) updates and deletes of the filter maps and of the programs'
	// state are refused by the kernel, and nothing changes.
	t.Run("frozen maps", func(t *testing.T) {
		ops := []struct{ name, op string }{
			{"prefix_trie", "update"}, {"prefix_trie", "delete"}, {"suffix_trie", "delete"}, {"proc_trie", "delete"},
			{".bss", "update"}, {"drops", "update"}, {"egress_socks", "update"},
		}
		var list []string
		for _, o := range ops {
			list = append(list, mapID(t, s, o.name)+":"+o.op)
		}
		_, out := runIn(t, ctr, "map", strings.Join(list, ","))
		for i, res := range strings.Split(out, "\n") {
			// egress_socks may hold no socket yet: nothing to update then.
			if !strings.Contains(res, "operation not permitted") && !(ops[i].name == "egress_socks" && strings.Contains(res, "is empty")) {
				t.Errorf("%s of %s: %s; want EPERM", ops[i].op, ops[i].name, res)
			}
		}
		runs := s.Counters()["selfcheck_runs"]
		for s.Counters()["selfcheck_runs"] < runs+2 {
			time.Sleep(10 * time.Millisecond)
		}
		if e := c.find(tamperedEvent); e != nil {
			t.Errorf("tamper reported on frozen maps: %s", e.Status.Message)
		}
		if got := s.SelfCheck(); got != "ok" {
			t.Errorf("SelfCheck() = %q; want ok", got)
		}
		t.Logf("%d maps frozen", s.Counters()["maps_frozen"])
	})

	// `bpftool link detach` of the cgroup connect4 link succeeds; the next
	// check reports it and attaches the program again, and connects are
	// seen again.
	t.Run("link detach", func(t *testing.T) {
		if _, err := exec.LookPath("bpftool"); err != nil {
			t.Skip("bpftool not installed")
		}
		var id string
		for _, wl := range s.self.links {
			if wl.name == "net_connect4" {
				id = strconv.Itoa(int(wl.linkID))
			}
		}
		if id == "" {
			t.Fatal("no link of net_connect4")
		}
		if out, err := exec.Command("bpftool", "link", "detach", "id", id).CombinedOutput(); err != nil {
			t.Fatalf("bpftool link detach id %s: %v: %s", id, err, out)
		}
		e := c.wait(t, "tampered", tamperedEvent)
		if e.Status.Fields["objects"] != "link net_connect4" || e.Status.Fields["repair"] != "repaired" ||
			!strings.Contains(e.Status.Message, "link "+id+" of net_connect4 detached from its cgroup; attached again as link") {
			t.Errorf("tamper report %q %v", e.Status.Message, e.Status.Fields)
		}
		if !slices.Contains(s.Programs(), "net_connect4") {
			t.Errorf("net_connect4 not in Programs() after it was attached again")
		}
		if !strings.HasPrefix(s.SelfCheck(), "tampered at ") {
			t.Errorf("SelfCheck() = %q; want the tampering", s.SelfCheck())
		}
		pid, _ := runNetHelper(t, "udp", "127.0.0.1:9", "1")
		c.wait(t, "connect after re-attach", connectBy(pid))
		t.Log(e.Status.Message)
	})
}

// protectedSensor loads the sensor with self-checks every 50ms.
func protectedSensor(t *testing.T, cfg config.CaptureConfig, freeze bool) (*Sensor, *collector) {
	t.Helper()
	defer func(d time.Duration, f bool) { selfCheckEvery, testNoFreeze = d, f }(selfCheckEvery, testNoFreeze)
	selfCheckEvery, testNoFreeze = 50*time.Millisecond, !freeze
	return startSensor(t, cfg)
}

func mapID(t *testing.T, s *Sensor, name string) string {
	t.Helper()
	info, err := s.coll.Maps[name].Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return strconv.Itoa(int(id))
}

func tamperedEvent(e *event.Event) bool {
	return e.Kind == event.KindStatus && e.Status.Fields[event.FieldSelfCheck] == event.SelfCheckTampered
}

// TestMapTamperDetectedAndRefilled: on a map the kernel did not freeze, a
// delete by id is seen at the next check, reported, and undone.
func TestMapTamperDetectedAndRefilled(t *testing.T) {
	s, c := protectedSensor(t, testConfig(), false)
	want, err := mapEntries(s.coll.Maps["prefix_trie"])
	if err != nil {
		t.Fatal(err)
	}
	ctr, _ := inContainer(t)
	if _, out := runIn(t, ctr, "map", mapID(t, s, "prefix_trie")+":delete"); out != "<nil>" {
		t.Fatalf("delete on an unfrozen map: %s", out)
	}
	e := c.wait(t, "tampered", tamperedEvent)
	f := e.Status.Fields
	if f["objects"] != "map prefix_trie" || f["repair"] != "repaired" ||
		!strings.Contains(e.Status.Message, fmt.Sprintf("1 of %d entries removed", len(want))) {
		t.Errorf("tamper report %q %v", e.Status.Message, f)
	}
	got, err := mapEntries(s.coll.Maps["prefix_trie"])
	if err != nil || len(got) != len(want) {
		t.Errorf("after refill: %d entries (%v); want %d", len(got), err, len(want))
	}
	t.Log(e.Status.Message)
}
