package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// Limits on the context section.
const (
	// ContextMinTableSize and ContextMaxTableSize bound process_table_size.
	ContextMinTableSize = 64
	ContextMaxTableSize = 1 << 22
	// ContextMaxRetention bounds process_retention: exited processes are kept
	// only so that a re-parented child can still show its fork-time lineage.
	ContextMaxRetention = 24 * time.Hour
	// ContextMaxCRITimeout bounds cri_timeout; a CRI call never blocks the
	// event path, but a long timeout delays pod names for new containers.
	ContextMaxCRITimeout = time.Minute
)

// DefaultCRISockets are the runtime sockets probed, in order, when
// context.cri_socket is empty.
var DefaultCRISockets = []string{
	"/run/containerd/containerd.sock",
	"/run/crio/crio.sock",
	"/var/run/containerd/containerd.sock",
	"/var/run/crio/crio.sock",
	"/run/k3s/containerd/containerd.sock",
	"/run/cri-dockerd.sock",
}

// DefaultMetadataAddrs are the cloud instance-metadata endpoints: AWS and
// GCP and Azure (169.254.169.254), AWS IPv6 (fd00:ec2::254), AWS ECS task
// metadata (169.254.170.2) and Alibaba Cloud (100.100.100.200).
var DefaultMetadataAddrs = []string{"169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200"}

// ContextConfig drives enrichment: the process table, container and pod
// resolution, and egress classification.
//
// In YAML:
//
//	context:
//	  process_retention: 5m        # keep exited processes this long (lineage of re-parented children)
//	  process_table_size: 65536    # LRU limit of the process table; evictions are counted
//	  cri_socket: ""               # "" = auto-detect containerd / CRI-O; "off" disables CRI
//	  cri_timeout: 2s              # per CRI call
//	  cri_cache_ttl: 1m            # how long pod metadata is trusted
//	  container_cgroup_regex: ['^/simctr-']   # extra cgroup paths that are containers (id = leaf name)
//	  pod_cidrs: ['10.244.0.0/16']
//	  service_cidrs: ['10.96.0.0/12']
//	  node_ips: ['10.200.1.1']     # extra addresses of this node (netlink finds the rest)
//	  metadata_addrs: ['169.254.169.254', 'fd00:ec2::254', '169.254.170.2', '100.100.100.200']
type ContextConfig struct {
	// ProcessRetention is how long an exited process stays in the table.
	ProcessRetention Duration `yaml:"process_retention"`
	// ProcessTableSize is the most processes the table holds.
	ProcessTableSize int `yaml:"process_table_size"`
	// CRISocket is the CRI runtime socket; "" auto-detects, "off" disables.
	CRISocket string `yaml:"cri_socket"`
	// CRITimeout bounds each CRI call.
	CRITimeout Duration `yaml:"cri_timeout"`
	// CRICacheTTL is how long a CRI answer is reused before it is asked again.
	CRICacheTTL Duration `yaml:"cri_cache_ttl"`
	// ContainerCgroupRegex lists extra regexes over the cgroup v2 path (as in
	// /proc/<pid>/cgroup, starting with "/"): a match makes the cgroup a
	// container whose id is the leaf directory name.
	ContainerCgroupRegex []string `yaml:"container_cgroup_regex"`
	// PodCIDRs are the cluster's pod networks (class "pod").
	PodCIDRs []string `yaml:"pod_cidrs"`
	// ServiceCIDRs are the cluster's service networks (also class "pod":
	// cluster-internal destinations).
	ServiceCIDRs []string `yaml:"service_cidrs"`
	// NodeIPs are extra addresses of this node, beyond what netlink lists.
	NodeIPs []string `yaml:"node_ips"`
	// MetadataAddrs are instance-metadata addresses (class "metadata").
	MetadataAddrs []string `yaml:"metadata_addrs"`
}

// CRIOff is the cri_socket value that disables the CRI client.
const CRIOff = "off"

func defaultContext() ContextConfig {
	return ContextConfig{
		ProcessRetention: Duration(5 * time.Minute),
		ProcessTableSize: 65536,
		CRITimeout:       Duration(2 * time.Second),
		CRICacheTTL:      Duration(time.Minute),
		MetadataAddrs:    append([]string(nil), DefaultMetadataAddrs...),
	}
}

// DefaultContext returns the built-in context section.
func DefaultContext() ContextConfig { return defaultContext() }

func (c *ContextConfig) validate() error {
	if c.ProcessRetention < 0 || c.ProcessRetention.D() > ContextMaxRetention {
		return fmt.Errorf("process_retention: %s is outside 0..%s", c.ProcessRetention.D(), ContextMaxRetention)
	}
	if c.ProcessTableSize < ContextMinTableSize || c.ProcessTableSize > ContextMaxTableSize {
		return fmt.Errorf("process_table_size: %d is outside %d..%d", c.ProcessTableSize, ContextMinTableSize, ContextMaxTableSize)
	}
	if c.CRISocket != "" && c.CRISocket != CRIOff && !strings.HasPrefix(c.CRISocket, "/") {
		return fmt.Errorf("cri_socket: %q is not an absolute path, \"\" (auto-detect) or %q", c.CRISocket, CRIOff)
	}
	if c.CRITimeout <= 0 || c.CRITimeout.D() > ContextMaxCRITimeout {
		return fmt.Errorf("cri_timeout: %s is outside (0, %s]", c.CRITimeout.D(), ContextMaxCRITimeout)
	}
	if err := checkDuration("cri_cache_ttl", c.CRICacheTTL, time.Second, 24*time.Hour); err != nil {
		return err
	}
	for i, re := range c.ContainerCgroupRegex {
		if _, err := regexp.Compile(re); err != nil {
			return fmt.Errorf("container_cgroup_regex[%d]: %q: %w", i, re, err)
		}
	}
	for _, l := range []struct {
		key  string
		vals []string
	}{{"pod_cidrs", c.PodCIDRs}, {"service_cidrs", c.ServiceCIDRs}} {
		for i, s := range l.vals {
			if _, err := ParseCIDROrAddr(s); err != nil {
				return fmt.Errorf("%s[%d]: %w", l.key, i, err)
			}
		}
	}
	for _, l := range []struct {
		key  string
		vals []string
	}{{"node_ips", c.NodeIPs}, {"metadata_addrs", c.MetadataAddrs}} {
		for i, s := range l.vals {
			if _, err := netip.ParseAddr(s); err != nil {
				return fmt.Errorf("%s[%d]: %q is not an IP address", l.key, i, s)
			}
		}
	}
	return nil
}

// ParseCIDROrAddr parses a CIDR ("10.0.0.0/8") or a bare address (taken as a
// host prefix) and masks it.
func ParseCIDROrAddr(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or address", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q: IPv4-mapped prefix shorter than /96", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}
