package detect

import (
	"path"
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

// diskFSTypes are filesystems that live on a block device: mounting one
// from a container mounts a disk, whatever the source is called.
var diskFSTypes = []string{"ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "msdos", "exfat", "ntfs", "ntfs3",
	"f2fs", "jfs", "reiserfs", "hfsplus", "nilfs2", "zfs"}

// File type bits of a mknod mode and the kernel-memory character devices
// (major 1: mem, kmem, port).
const (
	sIFMT  = 0o170000
	sIFBLK = 0o060000
	sIFCHR = 0o020000
)

// devNumbers splits a mknod dev argument (the kernel's new_decode_dev).
func devNumbers(dev uint64) (major, minor uint64) {
	return (dev>>8)&0xfff | (dev>>32)&^0xfff, dev&0xff | (dev>>12)&0xffffff00
}

// absPath is raw made absolute against cwd (when known) and cleaned, for
// comparing two spellings of one path an actor chose.
func absPath(raw, cwd string) string {
	if raw == "" {
		return ""
	}
	if raw[0] != '/' && cwd != "" {
		raw = cwd + "/" + raw
	}
	return path.Clean(raw)
}

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
			"or /dev/mem, /dev/kmem, /dev/port, /proc/kcore (by device number where it opened: a node made with " +
			"mknod under another name counts; a failed attempt by path); (3) calls mount(2) with such a source or type, with a " +
			"disk filesystem type (ext4, xfs, btrfs, vfat ...) whatever the source is named, or with a block " +
			"device node it made itself, except the runtime's own container setup (runc, crun ..., or " +
			"unshare/nsenter mounting proc on /proc, sysfs on /sys, cgroup on /sys/fs/cgroup); (3b) does the same " +
			"with the new mount API: fsopen(2) of such a type (the runtime's own fsopen of proc, sysfs or cgroup " +
			"exempt), or fsconfig(2) setting \"source\" to a device node or to a block node it made; (4) makes a block " +
			"device node, or a kernel-memory one (char 1:1, 1:2, 1:4), with mknod(2), whatever it names it, " +
			"refused attempts included (raw block volumes of a pod are made the same way by the runtime: allow " +
			"them with allow_cgroup). A cgroup mount is remembered for ESC-001's context.",
		Knobs: []string{"container_image_allowlist", "rules.ESC-007.allow_cgroup"},
		Kinds: kinds(event.KindExec, event.KindOpen, event.KindSyscall),
	}}}
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
	return containerSetupActor(s, p)
}

// containerSetupFS is containerSetupMount for fsopen(2), which names the
// type before any target (move_mount gives that, after fsmount): the
// runtime opening one of the filesystems it sets up containers with.
func containerSetupFS(s *Settings, p *event.Process, fstype string) bool {
	_, ok := canonicalMounts[fstype]
	return ok && containerSetupActor(s, p)
}

func containerSetupActor(s *Settings, p *event.Process) bool {
	b := exeBase(p)
	return s.IsRuntime(p.Exe) || b == "unshare" || b == "nsenter"
}

// deviceSource reports whether a mount source names a device node.
func deviceSource(src string) bool {
	return strings.HasPrefix(src, "/dev/") && !in(src, "/dev/null", "/dev/zero")
}

// madeBlockNode reports whether src (as the actor spelled it) is a block
// device node the container made with mknod.
func madeBlockNode(ctx *Context, ev *event.Event, src string) bool {
	cs := ctx.State.Container(ev.Container.ID)
	if cs == nil || src == "" || cs.BlockNodes[0] == "" {
		return false
	}
	abs := absPath(src, ev.Process.Cwd)
	for _, b := range cs.BlockNodes {
		if b != "" && b == abs {
			return true
		}
	}
	return false
}

// markCgroupMount remembers a cgroup mount for ESC-001's context.
func markCgroupMount(ctx *Context, ev *event.Event, fstype string) {
	if strings.HasPrefix(fstype, "cgroup") {
		if cs := ctx.State.Container(ev.Container.ID); cs != nil {
			cs.CgroupMount = ctx.Now
		}
	}
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
			major, minor := devNumbers(f.Rdev)
			dev := itoa(major) + ":" + itoa(minor)
			key = "dev:" + dev
			attrs = map[string]string{"condition": "device_open", "path": f.Path, "device": dev, "type": f.Type}
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
		if s == nil {
			return
		}
		switch s.Name {
		case "mknod":
			r.mknod(ctx, ev)
			return
		case "fsopen":
			r.fsopen(ctx, ev)
			return
		case "fsconfig":
			r.fsconfig(ctx, ev)
			return
		case "mount":
		default:
			return
		}
		fstype := s.Arg
		src, srcNote := "", ""
		if deviceSource(s.Path) {
			src = s.Path
		}
		if madeBlockNode(ctx, ev, s.Path) {
			src, srcNote = s.Path, " (a block device node the container made)"
		}
		if src == "" && in(fstype, diskFSTypes...) {
			src, srcNote = s.Path, " (a disk filesystem)"
		}
		if src == "" && !in(fstype, escapeFSTypes...) {
			return
		}
		if src == "" && containerSetupMount(ctx.Settings, p, fstype, s.Path2) {
			return
		}
		markCgroupMount(ctx, ev, fstype)
		ctx.Emit(ev, Report{
			Key: "mount:" + fstype + src,
			Explanation: who(ev) + " called mount(" + s.Path + ", " + s.Path2 + ", " + fstype + ")" + srcNote +
				resultNote(s.Ret) + " in " + where(ev) + ".",
			Attrs: map[string]string{"condition": "mount_syscall", "fstype": fstype, "source": s.Path, "target": s.Path2},
		})
	}
}

// fsopen judges the first step of the new mount API (fsopen, fsconfig,
// fsmount, move_mount), which mounts with no mount(2): opening a disk
// filesystem type, or a kernel one, is mounting it, as mount(2) with that
// type is.
func (r *esc007) fsopen(ctx *Context, ev *event.Event) {
	s := ev.Sys
	fstype, note := s.Arg, ""
	switch {
	case in(fstype, diskFSTypes...):
		note = " (a disk filesystem)"
	case in(fstype, escapeFSTypes...):
		if containerSetupFS(ctx.Settings, ev.Process, fstype) {
			return
		}
	default:
		return
	}
	markCgroupMount(ctx, ev, fstype)
	ctx.Emit(ev, Report{
		Key: "mount:" + fstype,
		Explanation: who(ev) + " called fsopen(" + fstype + ")" + note + ", the first step of a mount with the new mount API" +
			resultNote(s.Ret) + " in " + where(ev) + ".",
		Attrs: map[string]string{"condition": "fsopen", "fstype": fstype},
	})
}

// fsconfig commands whose value is a string (linux/mount.h).
const (
	fsconfigSetString    = 1
	fsconfigSetPath      = 3
	fsconfigSetPathEmpty = 4
)

// fsconfig judges the source the new mount API is given: a device node,
// or a block device node the container made, is a device mount whatever
// filesystem type fsopen named.
func (r *esc007) fsconfig(ctx *Context, ev *event.Event) {
	s := ev.Sys
	if s.Arg != "source" || s.Flags != fsconfigSetString && s.Flags != fsconfigSetPath && s.Flags != fsconfigSetPathEmpty {
		return
	}
	src, note := s.Path, ""
	switch {
	case madeBlockNode(ctx, ev, src):
		note = " (a block device node the container made)"
	case deviceSource(src):
	default:
		return
	}
	ctx.Emit(ev, Report{
		Key: "mount:" + src,
		Explanation: who(ev) + " set mount source " + src + note + " with fsconfig (the new mount API)" + resultNote(s.Ret) +
			" in " + where(ev) + ".",
		Attrs: map[string]string{"condition": "fsconfig_source", "source": src},
	})
}

// mknod judges a mknod(at) call: a block device node, or a character node
// of kernel memory, made in a container. Device numbers, not the name,
// say what the node is.
func (r *esc007) mknod(ctx *Context, ev *event.Event) {
	s := ev.Sys
	major, minor := devNumbers(s.Arg2)
	var what string
	switch s.Flags & sIFMT {
	case sIFBLK:
		what = "block device"
		if s.Ret >= 0 {
			if cs := ctx.State.Container(ev.Container.ID); cs != nil {
				cs.BlockNodes[cs.blockNext] = absPath(s.Path, ev.Process.Cwd)
				cs.blockNext = (cs.blockNext + 1) % uint8(len(cs.BlockNodes))
			}
		}
	case sIFCHR:
		if major != 1 || minor != 1 && minor != 2 && minor != 4 {
			return
		}
		what = "kernel memory device"
	default:
		return
	}
	dev := itoa(major) + ":" + itoa(minor)
	ctx.Emit(ev, Report{
		Key: "mknod:" + dev,
		Explanation: who(ev) + " made " + what + " node " + s.Path + " (" + dev + ") with mknod" + resultNote(s.Ret) +
			" in " + where(ev) + ".",
		Attrs: map[string]string{"condition": "mknod", "path": s.Path, "device": dev, "type": what},
	})
}
