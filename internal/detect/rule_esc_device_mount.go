package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// rawDevicePrefixes are block devices and kernel memory of ESC-007.
var rawDevicePrefixes = []string{"/dev/sd", "/dev/nvme", "/dev/vd", "/dev/xvd", "/dev/dm-", "/dev/hd", "/dev/md", "/dev/mapper/", "/dev/loop"}

// kernelMemory are exact paths of kernel memory interfaces.
var kernelMemory = []string{"/dev/mem", "/dev/kmem", "/dev/port", "/proc/kcore"}

// escapeFSTypes are filesystem types whose mount from a container exposes
// host kernel state.
var escapeFSTypes = []string{"cgroup", "cgroup2", "proc", "sysfs", "debugfs", "tracefs", "bpf", "securityfs", "configfs"}

// diskTools are raw-disk utilities of ESC-007.
var diskTools = []string{"debugfs", "fdisk", "sfdisk", "losetup"}

type esc007 struct{ baseRule }

func newESC007(*Settings) Rule {
	return &esc007{baseRule{Meta{
		ID:       "ESC-007",
		Title:    "Raw device, kernel memory or filesystem mount from a container",
		MITRE:    []string{"T1611", "T1006"},
		Severity: event.SevCritical,
		Description: "A container process (1) runs mount with a block-device source (/dev/sd*, nvme*, vd*, xvd*, " +
			"dm-*, md*, loop*, mapper/*) or a kernel filesystem type (cgroup, cgroup2, proc, sysfs, debugfs, " +
			"tracefs, bpf, securityfs, configfs), or runs debugfs/fdisk/sfdisk/losetup; (2) opens a block device " +
			"or /dev/mem, /dev/kmem, /dev/port, /proc/kcore (recognised by device number, so a node made with " +
			"mknod under another name counts; a failed attempt by path); (3) makes such a node with mknod (by its " +
			"device number); (4) calls mount(2) with such a source or type " +
			"(syscall tracepoint), except the runtime's own container setup (runc, crun ..., or unshare/nsenter " +
			"mounting proc on /proc, sysfs on /sys, cgroup on /sys/fs/cgroup). A cgroup mount is remembered for " +
			"ESC-001's context.",
		Knobs: []string{"container_image_allowlist", "rules.ESC-007.allow_cgroup"},
		Kinds: kinds(event.KindExec, event.KindOpen, event.KindSyscall),
	}}}
}

// deviceNode says whether mknod's mode and dev make a block device
// ("block") or a kernel memory node ("mem": /dev/mem, kmem, port), by
// number: the name it is given says nothing.
func deviceNode(mode, dev uint64) string {
	switch mode & 0o170000 {
	case 0o060000:
		return "block"
	case 0o020000:
		if major, minor := (dev>>8)&0xfff, dev&0xff|(dev>>12)&0xfff00; major == 1 && (minor == 1 || minor == 2 || minor == 4) {
			return "mem"
		}
	}
	return ""
}

// devNumber renders a stat(2) device number as "major:minor".
func devNumber(d uint64) string {
	major := (d>>32)&0xfffff000 | (d>>8)&0xfff
	minor := (d>>12)&0xffffff00 | d&0xff
	return itoa(major) + ":" + itoa(minor)
}

func isRawDevice(p string) bool {
	if !strings.HasPrefix(p, "/dev/") && p != "/proc/kcore" {
		return false
	}
	if in(p, kernelMemory...) {
		return true
	}
	for _, d := range rawDevicePrefixes {
		if strings.HasPrefix(p, d) && len(p) > len(d) {
			if d == "/dev/loop" && strings.HasPrefix(p, "/dev/loop-control") {
				return false
			}
			return true
		}
	}
	return false
}

// canonicalMounts are the targets where container setup mounts kernel
// filesystems.
var canonicalMounts = map[string]string{"proc": "/proc", "sysfs": "/sys", "cgroup2": "/sys/fs/cgroup", "cgroup": "/sys/fs/cgroup"}

// containerSetupMount reports whether a mount syscall is the runtime
// setting up a container: a runtime binary (or unshare/nsenter, which
// build the simulated containers and whose --mount-proc does the same)
// mounting proc, sysfs or cgroup at its usual place.
func containerSetupMount(s *Settings, p *event.Process, fstype, target string) bool {
	want, ok := canonicalMounts[fstype]
	if !ok || !underDir(target, want) {
		return false
	}
	b := exeBase(p)
	return s.IsRuntime(p.Exe) || b == "unshare" || b == "nsenter"
}

func (r *esc007) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if !inContainer(ev) || p == nil {
		return
	}
	switch ev.Kind {
	case event.KindExec:
		b := exeBase(p)
		if in(b, diskTools...) {
			ctx.Emit(ev, Report{
				Key:         "exec:" + b,
				Explanation: who(ev) + " ran disk tool " + cmdline(p) + " in " + where(ev) + ".",
				Attrs:       map[string]string{"condition": "disk_tool"},
			})
			return
		}
		if b != "mount" && argv0Base(p) != "mount" {
			return
		}
		fstype, _ := argValue(p.Args, "-t", "--types")
		var src string
		for i := 1; i < len(p.Args); i++ {
			if isRawDevice(p.Args[i]) {
				src = p.Args[i]
				break
			}
		}
		if src == "" && !in(fstype, escapeFSTypes...) {
			return
		}
		if strings.HasPrefix(fstype, "cgroup") {
			if cs := ctx.State.Container(ev.Container.ID); cs != nil {
				cs.CgroupMount = ctx.Now
			}
		}
		what := "a " + fstype + " filesystem"
		if src != "" {
			what = "device " + src
		}
		ctx.Emit(ev, Report{
			Key:         "mount:" + fstype + src,
			Explanation: who(ev) + " mounted " + what + " (" + cmdline(p) + ") in " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "mount_exec", "fstype": fstype, "source": src},
		})
	case event.KindOpen:
		f := ev.File
		if f == nil {
			return
		}
		var key string
		var attrs map[string]string
		switch {
		case f.Match.Has(event.MatchDevice):
			// The kernel opened a block device or kernel memory: its
			// number says which, whatever the node is called (mknod).
			key = "dev:" + devNumber(f.Rdev)
			attrs = map[string]string{"condition": "device_open", "path": f.Path, "device": devNumber(f.Rdev), "type": f.Type}
		case f.Match.Has(event.MatchKnob) && f.Knob == event.KnobKcore, isRawDevice(f.Path):
			key = "dev:" + f.Path
			attrs = map[string]string{"condition": "device_open", "path": f.Path}
		default:
			return
		}
		ctx.Emit(ev, Report{
			Key:         key,
			Explanation: who(ev) + " opened raw device " + f.Path + resultNote(int64(f.Result)) + " in " + where(ev) + ".",
			Attrs:       attrs,
		})
	case event.KindSyscall:
		s := ev.Sys
		if s != nil && s.Name == "mknod" {
			if kind := deviceNode(s.Flags, s.Arg2); kind != "" {
				ctx.Emit(ev, Report{
					Key: "mknod:" + devNumber(s.Arg2),
					Explanation: who(ev) + " made a " + kind + " node " + s.Path + " (" + devNumber(s.Arg2) + ")" +
						resultNote(s.Ret) + " in " + where(ev) + ".",
					Attrs: map[string]string{"condition": "mknod", "path": s.Path, "device": devNumber(s.Arg2), "type": kind},
				})
			}
			return
		}
		if s == nil || s.Name != "mount" {
			return
		}
		fstype := s.Arg
		src := ""
		if strings.HasPrefix(s.Path, "/dev/") && !in(s.Path, "/dev/null", "/dev/zero") {
			src = s.Path
		}
		if src == "" && !in(fstype, escapeFSTypes...) {
			return
		}
		if src == "" && containerSetupMount(ctx.Settings, p, fstype, s.Path2) {
			return
		}
		if strings.HasPrefix(fstype, "cgroup") {
			if cs := ctx.State.Container(ev.Container.ID); cs != nil {
				cs.CgroupMount = ctx.Now
			}
		}
		ctx.Emit(ev, Report{
			Key: "mount:" + fstype + src,
			Explanation: who(ev) + " called mount(" + s.Path + ", " + s.Path2 + ", " + fstype + ")" + resultNote(s.Ret) +
				" in " + where(ev) + ".",
			Attrs: map[string]string{"condition": "mount_syscall", "fstype": fstype, "source": s.Path, "target": s.Path2},
		})
	}
}
