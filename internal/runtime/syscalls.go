package runtime

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
)

// The syscall dispatcher (bpf/dispatch.bpf.h) routes each watched syscall
// number to its tail-call targets, the programs enter_<name> and
// exit_<name>. sysHandlers (per architecture, syscalls_<arch>.go) says
// which numbers go to which pair; the loader sets the dispatcher's bitmaps
// from it and fills the two program arrays. Those programs are never
// attached themselves. A row whose object has exit_<name> only (the path
// families, connect and accept: their cgroup hooks or the result say it all)
// is dispatched at sys_exit only: its sys_enter returns on the dispatcher's
// first bit test. The open family has no handler at all: the dispatcher
// decides its sys_exit inline (inlineExit).

// Dispatch slot layout (SYS_COMPAT_BASE, SYS_SLOTS in bpf/dispatch.bpf.h).
const (
	sysCompatBase = 1024
	sysSlots      = 2048
)

// Tail-call target name prefixes and the program arrays they go to.
const (
	sysEnterPrefix = "enter_"
	sysExitPrefix  = "exit_"
	sysEnterCalls  = "sys_enter_calls"
	sysExitCalls   = "sys_exit_calls"
)

// noSyscall marks a syscall an ABI does not have.
const noSyscall = -1

// sysHandler routes one syscall to its handler pair: native is the number
// of the architecture's own ABI, compat the number of its 32-bit compat ABI
// (i386 on x86-64), noSyscall where the ABI lacks the call.
type sysHandler struct {
	name           string
	native, compat int
}

// inlineExit are the rows whose sys_exit the dispatcher decides inline
// (the open family, bpf/open.bpf.h), with their open_call ids: they have no
// handler programs; the loader marks their slots in sys_open_call.
var inlineExit = map[string]uint8{"open": 0, "openat": 1, "openat2": 2, "creat": 3, "open_by_handle_at": 4}

// isSyscallHandler reports whether program name is a dispatcher tail-call
// target rather than a program to attach.
func isSyscallHandler(name string) bool {
	return strings.HasPrefix(name, sysEnterPrefix) || strings.HasPrefix(name, sysExitPrefix)
}

// tailPrefix names the other tail-call targets: programs a handler hands
// its work on to (so that the verifier checks each part within its
// budget), at a fixed index of a program array of their hook.
const tailPrefix = "tail_"

// tailTargets says where each tail_ program goes (TAIL_* in bpf/).
var tailTargets = []struct {
	prog, array string
	index       uint32
}{
	{"tail_open_emit", "sys_exit_tails", 0},
}

// isTailTarget reports whether program name is a tail_ target.
func isTailTarget(name string) bool { return strings.HasPrefix(name, tailPrefix) }

// fillTailCalls puts every tail_ program at its index and freezes the
// arrays; it returns the programs' names.
func fillTailCalls(coll *ebpf.Collection) ([]string, error) {
	arrays := map[string]*ebpf.Map{}
	var names []string
	for _, tt := range tailTargets {
		m, p := coll.Maps[tt.array], coll.Programs[tt.prog]
		if m == nil || p == nil {
			return nil, fmt.Errorf("fill tail calls: no map %s or program %s", tt.array, tt.prog)
		}
		if err := m.Put(tt.index, p); err != nil {
			return nil, fmt.Errorf("fill tail call %s[%d] with %s: %w", tt.array, tt.index, tt.prog, err)
		}
		arrays[tt.array] = m
		names = append(names, tt.prog)
	}
	for name, m := range arrays {
		if err := m.Freeze(); err != nil {
			return nil, fmt.Errorf("freeze %s: %w", name, err)
		}
	}
	return names, nil
}

// syscallSlots returns the dispatch slot of every handler row: handler
// name to slots. It fails on a number outside the table.
func syscallSlots(table []sysHandler) (map[string][]uint32, error) {
	slots := map[string][]uint32{}
	for _, h := range table {
		for _, n := range []struct {
			nr   int
			base int
		}{{h.native, 0}, {h.compat, sysCompatBase}} {
			if n.nr == noSyscall {
				continue
			}
			if n.nr < 0 || n.nr >= sysCompatBase {
				return nil, fmt.Errorf("syscall %s: number %d outside the dispatch table (0..%d)", h.name, n.nr, sysCompatBase-1)
			}
			slots[h.name] = append(slots[h.name], uint32(n.base+n.nr))
		}
	}
	return slots, nil
}

// syscallBitmaps returns the dispatcher's constants for one side of the
// table: the slot bitmap of the rows for which has(name) holds and the OR
// of its native and compat halves.
func syscallBitmaps(table []sysHandler, has func(name string) bool) (watched [sysSlots / 8]byte, union [sysCompatBase / 8]byte, err error) {
	slots, err := syscallSlots(table)
	if err != nil {
		return watched, union, err
	}
	for name, ss := range slots {
		if !has(name) {
			continue
		}
		for _, s := range ss {
			watched[s/8] |= 1 << (s % 8)
			n := s % sysCompatBase
			union[n/8] |= 1 << (n % 8)
		}
	}
	return watched, union, nil
}

// setSyscallTable checks that spec has an exit handler for every row of
// table that is not decided inline (and an enter handler only where it has
// an exit one) and writes the dispatcher's bitmaps and sys_open_call into
// spec's constants.
func setSyscallTable(spec *ebpf.CollectionSpec, table []sysHandler) error {
	for _, h := range table {
		_, exit := spec.Programs[sysExitPrefix+h.name]
		_, inline := inlineExit[h.name]
		switch {
		case inline && exit:
			return fmt.Errorf("syscall %s: decided inline by the dispatcher, but the BPF object has %s%s", h.name, sysExitPrefix, h.name)
		case !inline && !exit:
			return fmt.Errorf("syscall %s: BPF object has no handler program %s%s", h.name, sysExitPrefix, h.name)
		}
	}
	slots, err := syscallSlots(table)
	if err != nil {
		return err
	}
	var openCall [sysSlots]byte
	for name, id := range inlineExit {
		for _, s := range slots[name] {
			openCall[s] = id + 1
		}
	}
	vals := map[string]any{"sys_open_call": openCall}
	for _, side := range []struct {
		prefix, watched, any string
	}{{sysEnterPrefix, "sys_watched_enter", "sys_any_enter"}, {sysExitPrefix, "sys_watched_exit", "sys_any_exit"}} {
		watched, union, err := syscallBitmaps(table, func(name string) bool {
			_, ok := spec.Programs[side.prefix+name]
			_, inline := inlineExit[name]
			return ok || inline && side.prefix == sysExitPrefix
		})
		if err != nil {
			return err
		}
		vals[side.watched], vals[side.any] = watched, union
	}
	for name, v := range vals {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("BPF spec has no variable %s", name)
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	return nil
}

// fillSyscallCalls puts every handler program of table at its slots in
// the dispatcher's program arrays and returns their names. A row without
// an enter program has no slot in sys_enter_calls.
func fillSyscallCalls(coll *ebpf.Collection, table []sysHandler) ([]string, error) {
	slots, err := syscallSlots(table)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, arr := range []struct{ prefix, name string }{{sysEnterPrefix, sysEnterCalls}, {sysExitPrefix, sysExitCalls}} {
		m := coll.Maps[arr.name]
		if m == nil {
			return nil, fmt.Errorf("fill syscall dispatch: no map %s", arr.name)
		}
		for name, ss := range slots {
			p := coll.Programs[arr.prefix+name]
			_, inline := inlineExit[name]
			if p == nil && (arr.prefix == sysEnterPrefix || inline) {
				continue // dispatched at sys_exit only, or decided inline
			}
			if p == nil {
				return nil, fmt.Errorf("fill syscall dispatch: no program %s%s", arr.prefix, name)
			}
			for _, s := range ss {
				if err := m.Put(s, p); err != nil {
					return nil, fmt.Errorf("fill syscall dispatch %s[%d] with %s%s: %w", arr.name, s, arr.prefix, name, err)
				}
			}
			names = append(names, arr.prefix+name)
		}
		// No process may swap a handler afterwards (a no-op program would
		// blind the sensor to that syscall): updates from user space now
		// fail. The kernel still clears the array when the sensor closes.
		if err := m.Freeze(); err != nil {
			return nil, fmt.Errorf("freeze %s: %w", arr.name, err)
		}
	}
	return names, nil
}
