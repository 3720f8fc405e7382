package runtime

import (
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSyscallBitmaps(t *testing.T) {
	table := []sysHandler{{"openat", 257, 295}, {"open", 2, 5}, {"oldumount", noSyscall, 22}, {"kill", 62, 37}}
	watched, union, err := syscallBitmaps(table, func(name string) bool { return name != "kill" })
	if err != nil {
		t.Fatal(err)
	}
	bit := func(b []byte, n int) bool { return b[n/8]&(1<<(n%8)) != 0 }
	for _, n := range []int{257, 2, sysCompatBase + 295, sysCompatBase + 5, sysCompatBase + 22} {
		if !bit(watched[:], n) {
			t.Errorf("slot %d not set", n)
		}
	}
	for _, n := range []int{0, 1, 3, 22, 295, sysCompatBase + 2, sysCompatBase + 257, 62, sysCompatBase + 37} {
		if bit(watched[:], n) {
			t.Errorf("slot %d set; no row routes it on this side", n)
		}
	}
	for _, n := range []int{2, 5, 22, 257, 295} {
		if !bit(union[:], n) {
			t.Errorf("union bit %d not set", n)
		}
	}
	for _, n := range []int{3, 37, 62} {
		if bit(union[:], n) {
			t.Errorf("union bit %d set", n)
		}
	}
	all := func(string) bool { return true }
	if _, _, err := syscallBitmaps([]sysHandler{{"x", sysCompatBase, noSyscall}}, all); err == nil ||
		!strings.Contains(err.Error(), "outside the dispatch table") {
		t.Errorf("number %d accepted: %v", sysCompatBase, err)
	}
}

// TestSyscallTableCoversHandlers: every handler in the BPF object is routed
// on amd64 (a handler without a row would never run), every row has its
// exit handler (setSyscallTable checks that at load on every arch), and
// exactly the calls decided at sys_exit have no enter handler, and the
// open family none at all (the dispatcher decides it inline).
func TestSyscallTableCoversHandlers(t *testing.T) {
	spec, err := loadSensor()
	if err != nil {
		t.Fatal(err)
	}
	if err := setSyscallTable(spec, sysHandlers); err != nil {
		t.Fatal(err)
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("only amd64 has every legacy call; other tables route a subset")
	}
	rows := map[string]bool{}
	for _, h := range sysHandlers {
		rows[h.name] = true
	}
	n := 0
	for name := range spec.Programs {
		if !isSyscallHandler(name) {
			continue
		}
		n++
		base := strings.TrimPrefix(strings.TrimPrefix(name, sysEnterPrefix), sysExitPrefix)
		if !rows[base] {
			t.Errorf("handler %s has no row in sysHandlers", name)
		}
	}
	exitOnly := []string{"name_to_handle_at", "unlink", "unlinkat", "rename", "renameat", "renameat2", "link", "linkat",
		"symlink", "symlinkat", "truncate", "truncate64", "connect", "accept"}
	for name := range rows {
		_, enter := spec.Programs[sysEnterPrefix+name]
		_, inline := inlineExit[name]
		if want := !slices.Contains(exitOnly, name) && !inline; enter != want {
			t.Errorf("%s: enter handler %v, want %v", name, enter, want)
		}
	}
	if n != 2*len(rows)-len(exitOnly)-2*len(inlineExit) {
		t.Errorf("%d handler programs for %d rows, %d of them exit-only and %d inline", n, len(rows), len(exitOnly), len(inlineExit))
	}
}

// TestSyscallDispatchFrozen: once filled, the dispatcher's program arrays
// refuse changes from user space, so no process can unhook a syscall by
// deleting or replacing its handler.
func TestSyscallDispatchFrozen(t *testing.T) {
	s, _ := startSensor(t, testConfig())
	slots, err := syscallSlots(sysHandlers)
	if err != nil {
		t.Fatal(err)
	}
	slot := slots["openat"][0]
	for _, name := range []string{sysEnterCalls, sysExitCalls} {
		m := s.coll.Maps[name]
		if err := m.Delete(slot); !errors.Is(err, unix.EPERM) {
			t.Errorf("delete %s[%d]: %v; want EPERM (frozen)", name, slot, err)
		}
		if err := m.Put(slot, s.coll.Programs["exit_chroot"]); !errors.Is(err, unix.EPERM) {
			t.Errorf("replace %s[%d]: %v; want EPERM (frozen)", name, slot, err)
		}
	}
}
