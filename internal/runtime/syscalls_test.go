package runtime

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSyscallBitmaps(t *testing.T) {
	table := []sysHandler{{"openat", 257, 295}, {"open", 2, 5}, {"oldumount", noSyscall, 22}}
	watched, union, err := syscallBitmaps(table)
	if err != nil {
		t.Fatal(err)
	}
	bit := func(b []byte, n int) bool { return b[n/8]&(1<<(n%8)) != 0 }
	for _, n := range []int{257, 2, sysCompatBase + 295, sysCompatBase + 5, sysCompatBase + 22} {
		if !bit(watched[:], n) {
			t.Errorf("slot %d not set", n)
		}
	}
	for _, n := range []int{0, 1, 3, 22, 295, sysCompatBase + 2, sysCompatBase + 257} {
		if bit(watched[:], n) {
			t.Errorf("slot %d set; no row routes it", n)
		}
	}
	for _, n := range []int{2, 5, 22, 257, 295} {
		if !bit(union[:], n) {
			t.Errorf("union bit %d not set", n)
		}
	}
	if bit(union[:], 3) {
		t.Error("union bit 3 set")
	}
	if _, _, err := syscallBitmaps([]sysHandler{{"x", sysCompatBase, noSyscall}}); err == nil ||
		!strings.Contains(err.Error(), "outside the dispatch table") {
		t.Errorf("number %d accepted: %v", sysCompatBase, err)
	}
}

// TestSyscallTableCoversHandlers: every handler pair in the BPF object is
// routed on amd64 (a handler without a row would never run), and every row
// has its pair (setSyscallTable checks that at load on every arch).
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
	if n != 2*len(rows) {
		t.Errorf("%d handler programs for %d rows; want a pair per row", n, len(rows))
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
