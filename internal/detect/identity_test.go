package detect

import (
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/detect/model"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// ident marks an open event as matched by the kernel by identity.
func ident(ev *event.Event, m event.FileMatch, knob string, target uint32) *event.Event {
	ev.File.Match, ev.File.Knob, ev.File.TargetPID = m, knob, target
	return ev
}

// TestRulesOnIdentity: rules decide on what the kernel says it opened
// (a knob, a device number, another process's entry), not on the name the
// caller passed.
func TestRulesOnIdentity(t *testing.T) {
	infer := func(s string) *event.Container { return ctr("simctr-infer-" + s) }
	owner := proc(700, "/usr/bin/python3.11").owner()
	cases := []ruleCase{
		{"core_pattern through a symlink", "ESC-002", func() []*event.Event {
			return evs(ident(openEv(proc(11, "/bin/sh"), infer("k1"), "/proc/sys/kernel/core_pattern", "/tmp/cp", wr, 3),
				event.MatchKnob, event.KnobCorePattern, 0))
		}, true, event.SevCritical},
		{"core_pattern bind-mounted over a log file", "ESC-002", func() []*event.Event {
			return evs(ident(openEv(proc(11, "/usr/bin/python3"), infer("k1"), "/var/log/app.log", "", wr, 3),
				event.MatchKnob, event.KnobCorePattern, 0))
		}, true, 0},
		{"kcore is no usermode helper", "ESC-002", func() []*event.Event {
			return evs(ident(openEv(proc(11, "/bin/sh"), infer("k1"), "/proc/kcore", "/tmp/k", wr, 3),
				event.MatchKnob, event.KnobKcore, 0))
		}, false, 0},
		{"release_agent through a symlink", "ESC-001", func() []*event.Event {
			return evs(ident(openEv(proc(12, "/bin/sh"), infer("k2"), "/tmp/cg/release_agent", "/tmp/ra", wr, 3),
				event.MatchKnob, event.KnobReleaseAgent, 0))
		}, true, event.SevCritical},
		{"block device made by mknod", "ESC-007", func() []*event.Event {
			ev := ident(openEv(proc(13, "/usr/bin/dd"), infer("k3"), "/tmp/cache.db", "", rd, 3), event.MatchDevice, "", 0)
			ev.File.Type, ev.File.Rdev = event.FileTypeBlock, 0xfe00
			return evs(ev)
		}, true, event.SevCritical},
		{"mknod of a block device", "ESC-007", func() []*event.Event {
			return evs(sysEv(proc(13, "/usr/bin/mknod"), infer("k3"), event.Syscall{Name: "mknod", Path: "/tmp/d",
				Flags: 0o060600, Arg2: 0xfe00}))
		}, true, 0},
		{"mknod of /dev/mem under another name", "ESC-007", func() []*event.Event {
			return evs(sysEv(proc(13, "/usr/bin/mknod"), infer("k3"), event.Syscall{Name: "mknod", Path: "/tmp/m",
				Flags: 0o020600, Arg2: 0x101}))
		}, true, 0},
		{"mknod of /dev/null", "ESC-007", func() []*event.Event {
			return evs(sysEv(proc(13, "/usr/bin/mknod"), infer("k3"), event.Syscall{Name: "mknod", Path: "/tmp/n",
				Flags: 0o020666, Arg2: 0x103}))
		}, false, 0},
		{"owner's memory through a symlink, own pid namespace", "GPU-004", func() []*event.Event {
			return evs(gpuEv(700, infer("k4")), execEv(owner, infer("k4")),
				ident(openEv(proc(14, "/usr/bin/dd"), infer("k5"), "/proc/9/mem", "/tmp/m", rd, 3),
					event.MatchKnob, event.KnobProcMem, 700))
		}, true, event.SevCritical},
		{"owner's environ through another procfs", "CRED-003", func() []*event.Event {
			return evs(gpuEv(700, infer("k4")), execEv(owner, infer("k4")),
				ident(openEv(proc(15, "/usr/bin/cat"), infer("k6"), "/mnt/p/9/environ", "", rd, 3),
					event.MatchKnob, event.KnobProcEnviron, 700))
		}, true, 0},
	}
	runRuleCases(t, cases)
}

// TestEXF001ByInode: weights hard-linked to an innocuous name are still
// model weights: the kernel matched their inode.
func TestEXF001ByInode(t *testing.T) {
	e := newAIEngine(t, nil, nil)
	c := ctr("simctr-infer-k7")
	py := proc(310, "/usr/bin/python3.11", "python3", "-c", "send")
	rd := mopen(py, c, "/tmp/notes.txt", "", rd, 8*mib, 77)
	rd.File.Match = event.MatchModel
	out := run(e,
		at(0, execEv(py, c)),
		at(10*time.Millisecond, rd),
		at(300*time.Millisecond, cookieConn(py, c, "10.200.2.2", 443, event.ClassExternal, 91)),
		at(900*time.Millisecond, egressEv(py, c, "10.200.2.2", 443, event.ClassExternal, 91, 8*mib, true)),
		at(950*time.Millisecond, exitEv(py, c)),
	)
	if rulesFired(out)["EXF-001"] == nil {
		t.Fatalf("EXF-001 did not fire on a model read by inode; fired:\n%s", firedList(out))
	}
}

// TestEngineModelIdentity: the engine tells ModelIdentity of the files the
// registry adds, so the kernel recognises them by inode from then on.
func TestEngineModelIdentity(t *testing.T) {
	var got []model.Key
	e, err := New(harnessConfig(), &Options{HostNS: hostNS, AI: &AIOptions{StaticAlloc: harnessAlloc,
		ModelIdentity: func(add, remove []model.Key) { got = append(got, add...) }}})
	if err != nil {
		t.Fatal(err)
	}
	c := ctr("simctr-infer-k8")
	srv := proc(320, "/usr/bin/python3.11").owner()
	run(e, at(0, execEv(srv, c)), at(time.Millisecond, mopen(srv, c, llamaFile, "", rd, 8*mib, 4242)))
	if len(got) != 1 || got[0].Inode != 4242 || got[0].Dev != 2049 {
		t.Errorf("identity adds %v; want the llama file's inode", got)
	}
}
