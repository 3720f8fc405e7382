package runtime

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// bpfCall matches the record of a bpf(2) call on one of the sensor's
// objects by pid: the sys_enter copy (pending) or the sys_exit one.
func bpfCall(pid uint32, cmd uint64, pending bool) func(*event.Event) bool {
	return func(e *event.Event) bool {
		return e.Kind == event.KindSyscall && e.Sys.Name == "bpf" && e.Process.PID == pid &&
			e.Sys.SensorObject && e.Sys.Flags == cmd && e.Sys.Pending == pending
	}
}

// TestBPFCallsOnSensorObjects: what a privileged hostPID container does with
// the ids it reads in the sensor's fdinfo (BPF_MAP_GET_FD_BY_ID, then an
// update of the frozen filter map), pidfd_getfd of the sensor's map
// descriptor, and bpftool detaching its link and its cgroup program: each
// call is reported before it runs and again with its result, with the
// caller's cgroup, the object's id and name, as a priority record. Calls
// on a map that is not the sensor's are not.
func TestBPFCallsOnSensorObjects(t *testing.T) {
	s, c := protectedSensor(t, netConfig(), true)
	ctr, cgid := inContainer(t)
	trie := mapID(t, s, "prefix_trie")
	trieID, _ := strconv.Atoi(trie)

	// both waits for the pending and the result record of one call and
	// checks what they share.
	both := func(t *testing.T, what string, pid uint32, cmd uint64) (pending, done *event.Event) {
		t.Helper()
		pending = c.wait(t, what+" at sys_enter", bpfCall(pid, cmd, true))
		done = c.wait(t, what+" at sys_exit", bpfCall(pid, cmd, false))
		for _, e := range []*event.Event{pending, done} {
			if !e.Priority {
				t.Errorf("%s: not a priority record", what)
			}
		}
		if pending.Sys.Target != done.Sys.Target || pending.Sys.Arg != done.Sys.Arg || pending.Sys.Fd2 != done.Sys.Fd2 {
			t.Errorf("%s: enter names %d %q kind %d, exit %d %q kind %d", what, pending.Sys.Target, pending.Sys.Arg,
				pending.Sys.Fd2, done.Sys.Target, done.Sys.Arg, done.Sys.Fd2)
		}
		if !pending.Time.Before(done.Time) && !pending.Time.Equal(done.Time) {
			t.Errorf("%s: the enter record is later than the exit one", what)
		}
		return pending, done
	}

	t.Run("map by id from a container", func(t *testing.T) {
		pid, out := runIn(t, ctr, "map", trie+":update")
		if !strings.Contains(out, "operation not permitted") {
			t.Fatalf("update of the frozen map: %s; want EPERM", out)
		}
		_, get := both(t, "BPF_MAP_GET_FD_BY_ID", pid, event.BPFMapGetFdByID)
		if get.Sys.Target != uint32(trieID) || get.Sys.Arg != "prefix_trie" || get.Sys.Fd2 != event.BPFObjMap || get.Sys.Ret < 0 {
			t.Errorf("GET_FD_BY_ID names %s %d %q, result %d; want map %d prefix_trie and a descriptor",
				event.BPFObjKindName(get.Sys.Fd2), get.Sys.Target, get.Sys.Arg, get.Sys.Ret, trieID)
		}
		if get.Process.CgroupID != cgid {
			t.Errorf("caller's cgroup %d; want the container's %d", get.Process.CgroupID, cgid)
		}
		_, upd := both(t, "BPF_MAP_UPDATE_ELEM", pid, event.BPFMapUpdateElem)
		if upd.Sys.Target != uint32(trieID) || upd.Sys.Ret != -int64(unix.EPERM) || upd.Sys.Fd != int32(get.Sys.Ret) {
			t.Errorf("UPDATE_ELEM on map %d through fd %d, result %d; want map %d, fd %d, -EPERM (frozen)",
				upd.Sys.Target, upd.Sys.Fd, upd.Sys.Ret, trieID, get.Sys.Ret)
		}
	})

	t.Run("not the sensor's map", func(t *testing.T) {
		pid, out := runIn(t, ctr, "ownmap", trie)
		if out != "<nil>" {
			t.Fatalf("helper: %s", out)
		}
		// The last call names the sensor's map; the earlier ones, on the
		// helper's own map, came before it in the ring and are not there.
		last := c.wait(t, "GET_FD_BY_ID of the sensor's map", bpfCall(pid, event.BPFMapGetFdByID, false))
		for _, e := range c.all() {
			if e.Kind == event.KindSyscall && e.Process.PID == pid && e.Sys.SensorObject && e.Sys.Target != last.Sys.Target {
				t.Errorf("reported a call on another map: %s on %d %q", event.BPFCmdName(e.Sys.Flags), e.Sys.Target, e.Sys.Arg)
			}
		}
	})

	t.Run("pidfd_getfd", func(t *testing.T) {
		fd := s.coll.Maps["prefix_trie"].FD()
		pid, out := runIn(t, ctr, "getfd:"+strconv.Itoa(fd), strconv.Itoa(os.Getpid()))
		if out != "<nil>" {
			t.Fatalf("pidfd_getfd: %s", out)
		}
		ev := c.wait(t, "pidfd_getfd", func(e *event.Event) bool {
			return e.Kind == event.KindSyscall && e.Sys.Name == "pidfd_getfd" && e.Process.PID == pid && !e.Sys.Pending
		})
		c.wait(t, "pidfd_getfd at sys_enter", func(e *event.Event) bool {
			return e.Kind == event.KindSyscall && e.Sys.Name == "pidfd_getfd" && e.Process.PID == pid && e.Sys.Pending
		})
		sy := ev.Sys
		if !sy.SensorObject || sy.Target != uint32(os.Getpid()) || sy.Fd != int32(fd) || sy.Fd2 != event.BPFObjMap ||
			sy.Arg != "prefix_trie" || sy.Arg2 != uint64(trieID) || sy.Ret < 0 {
			t.Errorf("pidfd_getfd: %+v; want the sensor %d's fd %d, map %d prefix_trie, a descriptor", *sy, os.Getpid(), fd, trieID)
		}
	})

	t.Run("bpftool detaches", func(t *testing.T) {
		if _, err := exec.LookPath("bpftool"); err != nil {
			t.Skip("bpftool not installed")
		}
		var linkID, progID uint32
		for _, wl := range s.self.links {
			if wl.name == "net_connect6" {
				linkID, progID = uint32(wl.linkID), uint32(wl.progID)
			}
		}
		// Detaching the program from the cgroup by program id: refused,
		// since a link holds it; the attempt is reported.
		root, err := cgroupV2Root("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bpftool", "cgroup", "detach", root, "connect6", "id", strconv.Itoa(int(progID)))
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("bpftool cgroup detach of a linked program succeeded: %s", out)
		}
		pid := uint32(cmd.Process.Pid)
		_, det := both(t, "BPF_PROG_DETACH", pid, event.BPFProgDetach)
		if det.Sys.Target != progID || det.Sys.Fd2 != event.BPFObjProg || det.Sys.Ret >= 0 {
			t.Errorf("PROG_DETACH names %d kind %d, result %d; want program %d, an error", det.Sys.Target, det.Sys.Fd2, det.Sys.Ret, progID)
		}

		cmd = exec.Command("bpftool", "link", "detach", "id", strconv.Itoa(int(linkID)))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("bpftool link detach: %v: %s", err, out)
		}
		pid = uint32(cmd.Process.Pid)
		_, get := both(t, "BPF_LINK_GET_FD_BY_ID", pid, event.BPFLinkGetFdByID)
		_, ld := both(t, "BPF_LINK_DETACH", pid, event.BPFLinkDetach)
		if get.Sys.Target != linkID || ld.Sys.Target != linkID || ld.Sys.Fd2 != event.BPFObjLink ||
			ld.Sys.Arg2 != uint64(progID) || ld.Sys.Ret != 0 || !strings.HasPrefix("net_connect6", ld.Sys.Arg) {
			t.Errorf("LINK_DETACH %+v; want link %d running program %d (net_connect6), result 0", *ld.Sys, linkID, progID)
		}
		// The self-check attaches the program again (TestSelfProtection).
		c.wait(t, "tampered", tamperedEvent)
	})
}
