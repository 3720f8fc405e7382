package runtime

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// setNetConstants writes the network programs' load-time constants into
// spec: the dispatch slots of connect, by which the cgroup connect hooks
// tell a connect(2) (whose exit handler reports it with fd and result) from
// every other way into a connect (io_uring, i386 socketcall, TCP fast open),
// which they report themselves.
func setNetConstants(spec *ebpf.CollectionSpec, table []sysHandler) error {
	slots := [2]uint32{^uint32(0), ^uint32(0)}
	for _, h := range table {
		if h.name != "connect" {
			continue
		}
		if h.native != noSyscall {
			slots[0] = uint32(h.native)
		}
		if h.compat != noSyscall {
			slots[1] = uint32(sysCompatBase + h.compat)
		}
	}
	vs, ok := spec.Variables["net_connect_slot"]
	if !ok {
		return fmt.Errorf("BPF spec has no variable net_connect_slot")
	}
	if err := vs.Set(slots); err != nil {
		return fmt.Errorf("set net_connect_slot: %w", err)
	}
	return nil
}
