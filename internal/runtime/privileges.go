package runtime

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// CheckPrivileges asks the kernel whether this process may do what the
// sensor does, rather than checking a list of capabilities: what a kernel
// requires depends on its version, sysctls and security modules. It needs
// the kernel's BTF, then creates one small map of each type the sensor
// uses, and loads and attaches one empty program of each program and attach
// type, detaching it at once. A refusal names the object, the capabilities
// the kernel requires for it and why, and which of them this process lacks.
func CheckPrivileges() error {
	if err := requireBTF(); err != nil {
		return err
	}
	spec, err := loadSensor()
	if err != nil {
		return fmt.Errorf("load BPF spec: %w", err)
	}
	return probeSpec(spec)
}

const kernelBTF = "/sys/kernel/btf/vmlinux"

func requireBTF() error {
	if _, err := os.Stat(kernelBTF); err != nil {
		return fmt.Errorf("the sensor cannot load its eBPF programs: no kernel BTF at %s (the kernel needs CONFIG_DEBUG_INFO_BTF=y): %w", kernelBTF, err)
	}
	return nil
}

// probeSpec creates a map of each map type and loads and attaches an empty
// program of each (program type, attach type) of spec.
func probeSpec(spec *ebpf.CollectionSpec) error {
	var problems []string
	seenMaps := map[ebpf.MapType]bool{}
	for _, name := range slices.Sorted(maps.Keys(spec.Maps)) {
		ms := spec.Maps[name]
		if seenMaps[ms.Type] {
			continue
		}
		seenMaps[ms.Type] = true
		if err := probeMap(ms); err != nil {
			problems = append(problems, err.Error())
		}
	}
	type progKind struct {
		typ    ebpf.ProgramType
		attach ebpf.AttachType
	}
	seenProgs := map[progKind]bool{}
	var cgroupRoot string
	for _, name := range slices.Sorted(maps.Keys(spec.Programs)) {
		ps := spec.Programs[name]
		k := progKind{ps.Type, ps.AttachType}
		if seenProgs[k] {
			continue
		}
		seenProgs[k] = true
		if isCgroupType(ps.Type) && cgroupRoot == "" {
			root, err := cgroupV2Root("/proc/self/mountinfo")
			if err != nil {
				return fmt.Errorf("probe %s: %w", ps.SectionName, err)
			}
			cgroupRoot = root
		}
		if err := probeProgram(ps, cgroupRoot); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) == 0 {
		return nil
	}
	msg := "the sensor cannot load its eBPF programs: " + strings.Join(problems, "; ")
	if os.Geteuid() != 0 {
		msg += " (run as root, e.g. with sudo, or grant the capabilities named)"
	}
	return errors.New(msg)
}

// probeName names the probe objects, so that a look at bpftool while the
// sensor starts shows what they are.
const probeName = "kestrel_probe"

func probeMap(orig *ebpf.MapSpec) error {
	ms := orig.Copy()
	ms.Name = probeName
	ms.Contents = nil
	ms.Pinning = ebpf.PinNone
	switch ms.Type {
	case ebpf.RingBuf:
		ms.MaxEntries = uint32(os.Getpagesize())
	case ebpf.TaskStorage, ebpf.InodeStorage, ebpf.SkStorage, ebpf.CgroupStorage:
		// sized by the kernel
	default:
		ms.MaxEntries = 1
	}
	m, err := ebpf.NewMap(ms)
	if err != nil {
		return explainEPERM(fmt.Sprintf("create a %s map (like %s)", orig.Type, orig.Name), err,
			[]capability{capBPF}, "to create BPF maps")
	}
	return m.Close()
}

func probeProgram(orig *ebpf.ProgramSpec, cgroupRoot string) error {
	ps := orig.Copy()
	ps.Name = probeName
	var ret int32
	if isCgroupType(ps.Type) {
		ret = 1 // allow
	}
	ps.Instructions = asm.Instructions{asm.Mov.Imm(asm.R0, ret), asm.Return()}
	caps, why := programCaps(ps.Type)
	p, err := ebpf.NewProgram(ps)
	if err != nil {
		return explainEPERM(fmt.Sprintf("load a %s program (%s)", ps.Type, ps.SectionName), err, caps, why)
	}
	defer p.Close()
	l, err := attachOne(p, ps, cgroupRoot)
	if err != nil {
		if isCgroupType(ps.Type) {
			why += ", and read access to the cgroup v2 root " + cgroupRoot
		}
		return explainEPERM(fmt.Sprintf("attach a %s program (%s)", ps.Type, ps.SectionName), err, caps, why)
	}
	return l.Close()
}

// capability is one Linux capability, by bit and name.
type capability struct {
	bit  uint
	name string
}

var (
	capBPF      = capability{unix.CAP_BPF, "CAP_BPF"}
	capPerfmon  = capability{unix.CAP_PERFMON, "CAP_PERFMON"}
	capNetAdmin = capability{unix.CAP_NET_ADMIN, "CAP_NET_ADMIN"}
)

// programCaps returns what the kernel checks before it loads a program of
// type t (kernel/bpf/syscall.c: bpf_prog_load): CAP_BPF, plus CAP_PERFMON
// for tracing types, which read kernel memory, or CAP_NET_ADMIN for
// networking and cgroup types. CAP_SYS_ADMIN stands in for any of them.
func programCaps(t ebpf.ProgramType) ([]capability, string) {
	switch t {
	case ebpf.Kprobe, ebpf.TracePoint, ebpf.PerfEvent, ebpf.RawTracepoint, ebpf.RawTracepointWritable,
		ebpf.Tracing, ebpf.LSM, ebpf.StructOps, ebpf.Extension:
		return []capability{capBPF, capPerfmon}, "for tracing programs (they read kernel memory)"
	case ebpf.SchedCLS, ebpf.SchedACT, ebpf.XDP, ebpf.LWTIn, ebpf.LWTOut, ebpf.LWTXmit, ebpf.LWTSeg6Local,
		ebpf.SockOps, ebpf.SkSKB, ebpf.SkMsg, ebpf.FlowDissector, ebpf.CGroupSKB, ebpf.CGroupSock,
		ebpf.CGroupSockAddr, ebpf.CGroupSockopt, ebpf.CGroupDevice, ebpf.CGroupSysctl:
		return []capability{capBPF, capNetAdmin}, "for networking and cgroup programs"
	}
	return []capability{capBPF}, "to load BPF programs"
}

// explainEPERM wraps err from the operation what. A refusal (EPERM) is
// explained with the capabilities the kernel wants and which of them this
// process lacks, in place of the library's text (which suggests raising
// RLIMIT_MEMLOCK, something kernels since 5.11 no longer check).
func explainEPERM(what string, err error, caps []capability, why string) error {
	if !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("%s: %w", what, err)
	}
	names := make([]string, len(caps))
	for i, c := range caps {
		names[i] = c.name
	}
	msg := "the kernel requires " + strings.Join(names, " and ") + " (or CAP_SYS_ADMIN) " + why
	eff, cerr := effectiveCaps()
	switch {
	case cerr != nil:
		msg += "; " + cerr.Error()
	default:
		var lack []string
		for _, c := range caps {
			if eff&(1<<c.bit) == 0 {
				lack = append(lack, c.name)
			}
		}
		if len(lack) > 0 {
			msg += "; this process lacks " + strings.Join(lack, " and ")
		} else {
			msg += "; this process holds them, so something else refused (a security module, seccomp, " +
				"the kernel.unprivileged_bpf_disabled sysctl, or a user namespace)"
		}
	}
	return fmt.Errorf("%s: %w: %s", what, unix.EPERM, msg)
}

// effectiveCaps returns this thread's effective capability set.
func effectiveCaps() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	return uint64(data[0].Effective) | uint64(data[1].Effective)<<32, nil
}
