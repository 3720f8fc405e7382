package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// ListenFlags are the listen addresses the command line sets over the file's
// (--health-listen, --tcp-listen, --metrics-listen). A DaemonSet knows its pod
// IP only from its environment, which reaches the arguments ($(POD_IP)) but
// not a ConfigMap. A nil field keeps the file's address; an empty one turns
// the listener off.
type ListenFlags struct {
	Health, TCP, Metrics *string
}

// ApplyListenFlags sets the addresses of f over c and checks the listeners
// as Validate does, naming the flag when its own value is wrong.
func (c *Config) ApplyListenFlags(f ListenFlags) error {
	for _, l := range []struct {
		flag     string
		val, dst *string
	}{
		{"--health-listen", f.Health, &c.Export.HealthListen},
		{"--tcp-listen", f.TCP, &c.Export.TCPListen},
		{"--metrics-listen", f.Metrics, &c.Metrics.Listen},
	} {
		if l.val == nil {
			continue
		}
		if err := checkListen(*l.val); err != nil {
			return fmt.Errorf("%s: %w", l.flag, err)
		}
		*l.dst = *l.val
	}
	if err := c.Export.validateListeners(); err != nil {
		return fmt.Errorf("with the listen flags, export.%w", err)
	}
	return nil
}

// checkListen checks a host:port listen address; empty is no listener. An
// IPv6 host is bracketed ("[fd00::1]:9876"); so may an IPv4 one be, which lets
// a manifest write "[$(POD_IP)]:9876" whatever the pod's address family.
func checkListen(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", addr, err)
	}
	// Port 0 (an ephemeral port, logged at start) is for tests.
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q of %q is not a number in [0, 65535]", port, addr)
	}
	return nil
}

// sameListener reports whether two checked listen addresses would bind the
// same port on a common address: the same port, and the same host or a
// wildcard host on either side.
func sameListener(a, b string) bool {
	ha, sa, _ := net.SplitHostPort(a)
	hb, sb, _ := net.SplitHostPort(b)
	pa, _ := strconv.ParseUint(sa, 10, 16)
	pb, _ := strconv.ParseUint(sb, 10, 16)
	if pa != pb || pa == 0 {
		return false
	}
	if wildcardHost(ha) || wildcardHost(hb) || ha == hb {
		return true
	}
	ia, ea := netip.ParseAddr(ha)
	ib, eb := netip.ParseAddr(hb)
	return ea == nil && eb == nil && ia.Unmap() == ib.Unmap()
}

func wildcardHost(h string) bool {
	if h == "" {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsUnspecified()
}
