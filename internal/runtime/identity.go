package runtime

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Identity of opened files (bpf/open.bpf.h): the kernel reports a
// successful open by what it opened, whatever name reached it. This file
// holds the tables that decision reads: the kernel knobs, by filesystem
// class and dentry name, and the model files, by device and inode number,
// which user space keeps current through SetModelFiles.

// Filesystem classes (enum fs_class in bpf/open.bpf.h).
const (
	fsProc    = 1
	fsSysfs   = 2
	fsCgroup  = 3
	fsCgroup2 = 4
	fsBinfmt  = 5
	fsClasses = 8
)

// knobKeyName is the name size of struct knob_key.
const knobKeyName = 20

// knob is one kernel knob the kernel recognises by identity.
type knob struct {
	id    uint8
	fs    uint32 // filesystem class of its superblock
	dname string // dentry name
	name  string // event.File.Knob
	// otherPID: a /proc/<pid> entry, reported only when the process it
	// belongs to is not the caller.
	otherPID bool
}

// knobs are the knobs of the catalog's escape rules (docs/rules.md:
// ESC-001, ESC-002, ESC-007, GPU-004, CRED-003). A dentry name is unique
// within its filesystem for each of them (sysrq is only
// /proc/sys/kernel/sysrq, mem only /proc/<pid>/mem ...), so no parent
// needs checking; release_agent and notify_on_release exist only on cgroup
// v1 hierarchies, register only on binfmt_misc.
var knobs = []knob{
	{1, fsProc, "core_pattern", event.KnobCorePattern, false},
	{2, fsProc, "core_pipe_limit", event.KnobCorePipeLimit, false},
	{3, fsProc, "modprobe", event.KnobModprobe, false},
	{4, fsProc, "sysrq", event.KnobSysrq, false},
	{5, fsProc, "sysrq-trigger", event.KnobSysrqTrigger, false},
	{6, fsProc, "hotplug", event.KnobHotplug, false},
	{7, fsProc, "poweroff_cmd", event.KnobPoweroffCmd, false},
	{8, fsSysfs, "uevent_helper", event.KnobUeventHelper, false},
	{9, fsCgroup, "release_agent", event.KnobReleaseAgent, false},
	{10, fsCgroup, "notify_on_release", event.KnobNotifyOnRelease, false},
	{11, fsBinfmt, "register", event.KnobBinfmtRegister, false},
	{12, fsProc, "kcore", event.KnobKcore, false},
	{13, fsProc, "mem", event.KnobProcMem, true},
	{14, fsProc, "environ", event.KnobProcEnviron, true},
	{15, fsProc, "maps", event.KnobProcMaps, true},
}

// knobByID indexes knobs by id for the decoder.
var knobByID = func() (t [256]string) {
	for _, k := range knobs {
		t[k.id] = k.name
	}
	return t
}()

// knobName returns the event name of knob id, or "".
func knobName(id uint8) string { return knobByID[id] }

// knobTable returns the keys and values of the knob_names map and the
// knob_lens constant.
func knobTable() (keys [][]byte, vals [][]byte, lens [fsClasses]uint32, err error) {
	seen := map[string]bool{}
	for _, k := range knobs {
		if len(k.dname) == 0 || len(k.dname) >= knobKeyName {
			return nil, nil, lens, fmt.Errorf("knob %s: dentry name %q does not fit %d bytes", k.name, k.dname, knobKeyName-1)
		}
		id := fmt.Sprint(k.fs, "/", k.dname)
		if seen[id] || k.id == 0 {
			return nil, nil, lens, fmt.Errorf("knob %s: duplicate or zero id", k.name)
		}
		seen[id] = true
		key := make([]byte, 4+knobKeyName)
		le.PutUint32(key, k.fs)
		copy(key[4:], k.dname)
		val := make([]byte, 4)
		val[0] = k.id
		if k.otherPID {
			val[1] = 1 // KNOB_F_OTHER_PID
		}
		keys, vals = append(keys, key), append(vals, val)
		lens[k.fs] |= 1 << len(k.dname)
	}
	return keys, vals, lens, nil
}

// setKnobLens writes the knob_lens constant into spec.
func setKnobLens(spec *ebpf.CollectionSpec) error {
	_, _, lens, err := knobTable()
	if err != nil {
		return err
	}
	vs, ok := spec.Variables["knob_lens"]
	if !ok {
		return errors.New("BPF spec has no variable knob_lens")
	}
	if err := vs.Set(lens); err != nil {
		return fmt.Errorf("set knob_lens: %w", err)
	}
	return nil
}

// fillKnobs writes the knob table into the loaded knob_names map.
func fillKnobs(coll *ebpf.Collection) error {
	keys, vals, _, err := knobTable()
	if err != nil {
		return err
	}
	m := coll.Maps["knob_names"]
	if m == nil {
		return errors.New("fill knobs: no map knob_names")
	}
	for i := range keys {
		if err := m.Put(keys[i], vals[i]); err != nil {
			return fmt.Errorf("fill knobs with %s: %w", knobs[i].name, err)
		}
	}
	return nil
}

// FileID identifies a file by device (stat(2) encoding) and inode number.
type FileID struct {
	Dev, Inode uint64
}

// Model file map sizes (bpf/open.bpf.h).
const (
	// MaxModelFiles is how many model files the kernel recognises by
	// identity; SetModelFiles refuses more and counts them.
	MaxModelFiles = 65536
	modelBits     = 65536
)

// modelBit is model_bit() of bpf/open.bpf.h.
func modelBit(ino uint64) uint32 {
	return uint32((ino * 0x9E3779B97F4A7C15) >> 48)
}

// modelSet mirrors the kernel's model_inodes map and model_bits bitmap.
type modelSet struct {
	mu    sync.Mutex
	files map[FileID]struct{}
	bits  [modelBits / 64]uint64
	full  uint64 // additions refused because the map was full
}

// modelKey encodes struct model_key for id.
func modelKey(id FileID) ([]byte, error) {
	dev, ok := userDevToKernel(id.Dev)
	if !ok {
		return nil, fmt.Errorf("device %#x does not fit the kernel's 32-bit dev_t", id.Dev)
	}
	k := make([]byte, 16)
	le.PutUint64(k, id.Inode)
	le.PutUint32(k[8:], dev)
	return k, nil
}

// SetModelFiles adds files to and removes files from the set of model
// files the kernel recognises by identity: an open of one of them is
// reported whatever name reaches it (a hard link, a rename, a bind mount,
// a file handle). The model registry decides which files these are; the
// set holds at most MaxModelFiles (refused additions are counted as
// model_identity_full). It returns the first error and applies the rest.
func (s *Sensor) SetModelFiles(add, remove []FileID) error {
	if s == nil || s.coll == nil || s.floor {
		return nil
	}
	m, bm := s.coll.Maps["model_inodes"], s.coll.Maps["model_bits"]
	if m == nil || bm == nil {
		return errors.New("set model files: no model_inodes or model_bits map")
	}
	ms := &s.models
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.files == nil {
		ms.files = make(map[FileID]struct{})
	}
	var errs []error
	changed := false
	for _, id := range remove {
		if _, ok := ms.files[id]; !ok {
			continue
		}
		k, err := modelKey(id)
		if err == nil {
			err = m.Delete(k)
		}
		if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("remove model file %d:%d: %w", id.Dev, id.Inode, err))
			continue
		}
		delete(ms.files, id)
		changed = true
	}
	for _, id := range add {
		if id.Inode == 0 {
			continue
		}
		if _, ok := ms.files[id]; ok {
			continue
		}
		if len(ms.files) >= MaxModelFiles {
			ms.full++
			continue
		}
		k, err := modelKey(id)
		if err == nil {
			err = m.Put(k, uint32(1))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("add model file %d:%d: %w", id.Dev, id.Inode, err))
			continue
		}
		ms.files[id] = struct{}{}
		changed = true
	}
	if changed {
		// Rebuilt from the set: a removed file's bit goes only when no
		// other file shares it. The kernel copies the value over the old
		// one; a bit set in both stays set throughout.
		var bits [modelBits / 64]uint64
		for id := range ms.files {
			b := modelBit(id.Inode)
			bits[b/64] |= 1 << (b % 64)
		}
		if bits != ms.bits {
			if err := bm.Put(uint32(0), bits); err != nil {
				errs = append(errs, fmt.Errorf("update model_bits: %w", err))
			} else {
				ms.bits = bits
			}
		}
	}
	return errors.Join(errs...)
}

// modelCounters adds the model identity counters to m.
func (s *Sensor) modelCounters(m map[string]uint64) {
	s.models.mu.Lock()
	m["model_identity_files"] = uint64(len(s.models.files))
	m["model_identity_full"] = s.models.full
	s.models.mu.Unlock()
}

// userDevToKernel converts a stat(2) dev_t to the kernel's internal one
// (major << 20 | minor); ok is false when it does not fit.
func userDevToKernel(d uint64) (uint32, bool) {
	major := (d>>32)&0xfffff000 | (d>>8)&0xfff
	minor := (d>>12)&0xffffff00 | d&0xff
	if major >= 1<<12 || minor >= 1<<20 {
		return 0, false
	}
	return uint32(major<<20 | minor), true
}
