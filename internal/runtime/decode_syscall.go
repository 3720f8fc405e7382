package runtime

import "github.com/kestrel-sec/kestrel/internal/event"

func (d *decoder) decodeSyscall(h *recHeader, b []byte) (*event.Event, error) {
	return nil, malformed("syscall record: not decoded yet")
}
