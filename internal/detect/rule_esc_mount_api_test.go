package detect

import (
	"strings"
	"testing"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// TestMountAPIConditions: each step of the new mount API that ESC-007 and
// ESC-005 judge fires its own condition, with the call in the explanation
// (a block node's mknod fires ESC-007 by itself, so TestRules cannot tell
// the fsconfig condition from it).
func TestMountAPIConditions(t *testing.T) {
	c := ctr("simctr-infer-x")
	py := proc(14, "/usr/bin/python3").cwd("/tmp")
	for _, tc := range []struct {
		name, rule, condition, explains string
		evs                             []*event.Event
	}{
		{"fsopen of a disk filesystem", "ESC-007", "fsopen", "called fsopen(ext4) (a disk filesystem)",
			evs(sysEv(py, c, event.Syscall{Name: "fsopen", Arg: "ext4", Ret: -1}))},
		{"fsopen of cgroup", "ESC-007", "fsopen", "called fsopen(cgroup), the first step",
			evs(sysEv(py, c, event.Syscall{Name: "fsopen", Arg: "cgroup", Ret: 3}))},
		{"fsconfig source a raw device", "ESC-007", "fsconfig_source", "set mount source /dev/sdb1 with fsconfig",
			evs(sysEv(py, c, event.Syscall{Name: "fsconfig", Fd: 3, Flags: fsconfigSetString, Arg: "source", Path: "/dev/sdb1"}))},
		{"fsconfig source a block node the container made", "ESC-007", "fsconfig_source",
			"set mount source cache.img (a block device node the container made)",
			evs(sysEv(py, c, event.Syscall{Name: "mknod", Path: "/tmp/cache.img", Flags: sIFBLK | 0o600, Arg2: 259<<8 | 1}),
				sysEv(py, c, event.Syscall{Name: "fsconfig", Fd: 3, Flags: fsconfigSetPath, Arg: "source", Path: "cache.img", Arg2: 0xffffff9c}))},
		{"open_tree clone of another process's root", "ESC-005", "open_tree",
			"cloned the mount tree at /etc with open_tree(OPEN_TREE_CLONE) of the host through /proc/4000/root (failed, errno 22)",
			evs(execEv(proc(4000, "/usr/sbin/sshd").ns(hostNS), nil),
				sysEv(proc(33, "/usr/bin/python3").ns(hostPIDNS), c,
					event.Syscall{Name: "open_tree", Fd: atFDCWD, Path: "/proc/4000/root/etc", Flags: openTreeClone, Ret: -22}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := run(newTestEngine(t, nil), tc.evs...)
			var got []string
			for _, f := range findingsOf(out, tc.rule) {
				got = append(got, f.Attrs["condition"]+": "+f.Explanation)
				if f.Attrs["condition"] == tc.condition && strings.Contains(f.Explanation, tc.explains) {
					return
				}
			}
			t.Errorf("no %s finding with condition %s explaining %q; got %q", tc.rule, tc.condition, tc.explains, got)
		})
	}
}
