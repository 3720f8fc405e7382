package runtime

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/config"
)

// TestOptionalProgramsLoadWithTheShippedConfig: a program is optional
// because an older kernel may lack its hook, never because the verifier
// refuses it here. Where this kernel has the hook, every optional program
// must load with the default config (its constants decide which branches
// the verifier sees: with capture.open_repeat_window and the flood budgets
// on, the io_uring completion program once passed the 1M-instruction
// limit and was left out with only a warning, while the tests, which
// turn the repeat window off, passed).
func TestOptionalProgramsLoadWithTheShippedConfig(t *testing.T) {
	requireKernel(t)
	hasTracepoint := func(name string) bool { return kernelHasTracepoint(t, name) }
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	major, minor := kernelRelease(unix.ByteSliceToString(u.Release[:]))
	want := map[string]bool{ // program: this kernel has its hook
		"kestrel_iou_submit_optional":   hasTracepoint("io_uring_submit_req"),
		"kestrel_iou_complete_optional": hasTracepoint("io_uring_complete"),
		"net_connect_unix_optional":     major > 6 || major == 6 && minor >= 7, // BPF_CGROUP_UNIX_CONNECT
	}
	spec, err := loadSensor()
	if err != nil {
		t.Fatal(err)
	}
	for name := range spec.Programs {
		if _, ok := want[name]; !ok && strings.HasSuffix(name, optionalSuffix) {
			t.Errorf("optional program %s has no entry here: say which kernels have its hook", name)
		}
	}
	s, _ := startSensor(t, config.Default().Capture)
	loaded := s.Programs()
	for name, has := range want {
		switch {
		case has && !slices.Contains(loaded, name):
			t.Errorf("%s did not load, though this kernel has its hook: the verifier refused it (the sensor's log says why)", name)
		case !has:
			t.Logf("%s: this kernel has no hook for it", name)
		}
	}
}

// kernelRelease parses "6.18.0-foo" into 6, 18.
func kernelRelease(r string) (major, minor int) {
	n, i := 0, 0
	var parts [2]int
	for _, c := range r {
		switch {
		case c >= '0' && c <= '9':
			n = n*10 + int(c-'0')
		case c == '.' && i < 1:
			parts[i], n, i = n, 0, i+1
		default:
			parts[i] = n
			return parts[0], parts[1]
		}
	}
	parts[i] = n
	return parts[0], parts[1]
}

// kernelHasTracepoint reports whether the kernel's BTF has the tracepoint
// name (its btf_trace_<name> typedef, which tp_btf programs attach by).
func kernelHasTracepoint(t *testing.T, name string) bool {
	t.Helper()
	vmlinux, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatalf("kernel BTF: %v", err)
	}
	var td *btf.Typedef
	err = vmlinux.TypeByName("btf_trace_"+name, &td)
	if err != nil && !errors.Is(err, btf.ErrNotFound) {
		t.Fatalf("kernel BTF: %v", err)
	}
	return err == nil
}
