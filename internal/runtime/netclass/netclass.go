// Package netclass classifies egress destinations: loopback, this node,
// the cluster's pod and service networks, cloud instance metadata, or
// external.
//
// The node's own addresses and the routes of CNI interfaces come from
// netlink (vishvananda/netlink), listed at start and kept current by
// address and route subscriptions; the rest comes from configuration.
package netclass

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// Config is the static part of the classification.
type Config struct {
	// PodCIDRs and ServiceCIDRs are cluster-internal networks (class pod).
	PodCIDRs, ServiceCIDRs []string
	// NodeIPs are extra addresses of this node.
	NodeIPs []string
	// MetadataAddrs are instance-metadata endpoints (class metadata).
	MetadataAddrs []string
}

// FromContext takes the classification settings from the context section.
func FromContext(c config.ContextConfig) Config {
	return Config{PodCIDRs: c.PodCIDRs, ServiceCIDRs: c.ServiceCIDRs, NodeIPs: c.NodeIPs, MetadataAddrs: c.MetadataAddrs}
}

// cniPrefixes name the interfaces through which pod networks are routed.
var cniPrefixes = []string{
	"cni", "cbr", "cali", "flannel", "cilium_", "lxc", "weave", "vxlan.calico", "kube-bridge",
	"tunl", "antrea", "ovn", "genev", "docker", "br-", "podman", "nerdctl",
}

// serviceIfaces hold cluster-internal addresses (IPVS service IPs,
// NodeLocal DNSCache) that are not the node's own.
var serviceIfaces = []string{"kube-ipvs0", "nodelocaldns"}

func hasPrefixAny(s string, pre []string) bool {
	for _, p := range pre {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// state is an immutable view; Classify reads it without locks.
type state struct {
	node     map[netip.Addr]struct{}
	metadata map[netip.Addr]struct{}
	pod      []netip.Prefix
	// cluster holds addresses on service interfaces (class pod).
	cluster map[netip.Addr]struct{}
}

// Options tune a Classifier. Zero values get defaults.
type Options struct {
	Logger *slog.Logger
	// Resync is how often the full lists are read again even without
	// notifications (default 30s).
	Resync time.Duration
}

// Classifier classifies destination addresses.
//
// Classify is safe for concurrent use with Refresh and Run.
type Classifier struct {
	staticPods  []netip.Prefix
	staticNodes []netip.Addr
	metadata    map[netip.Addr]struct{}
	opts        Options
	cur         atomic.Pointer[state]

	refreshes, refreshErrors, updates atomic.Uint64
}

// New returns a Classifier that knows only cfg until Refresh or Run reads
// the host's addresses.
func New(cfg Config, opts *Options) (*Classifier, error) {
	c := &Classifier{metadata: map[netip.Addr]struct{}{}}
	if opts != nil {
		c.opts = *opts
	}
	if c.opts.Logger == nil {
		c.opts.Logger = slog.Default()
	}
	if c.opts.Resync <= 0 {
		c.opts.Resync = 30 * time.Second
	}
	for _, l := range [][]string{cfg.PodCIDRs, cfg.ServiceCIDRs} {
		for _, s := range l {
			p, err := config.ParseCIDROrAddr(s)
			if err != nil {
				return nil, fmt.Errorf("parse cluster cidr: %w", err)
			}
			c.staticPods = append(c.staticPods, p)
		}
	}
	for _, s := range cfg.NodeIPs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("parse node ip %q: %w", s, err)
		}
		c.staticNodes = append(c.staticNodes, a.Unmap())
	}
	for _, s := range cfg.MetadataAddrs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("parse metadata address %q: %w", s, err)
		}
		c.metadata[a.Unmap()] = struct{}{}
	}
	c.install(nil, nil, nil)
	return c, nil
}

func (c *Classifier) install(node, cluster []netip.Addr, pods []netip.Prefix) {
	st := &state{node: map[netip.Addr]struct{}{}, metadata: c.metadata, cluster: map[netip.Addr]struct{}{}}
	for _, a := range c.staticNodes {
		st.node[a] = struct{}{}
	}
	for _, a := range node {
		st.node[a.Unmap()] = struct{}{}
	}
	for _, a := range cluster {
		st.cluster[a.Unmap()] = struct{}{}
	}
	st.pod = append(append(st.pod, c.staticPods...), pods...)
	c.cur.Store(st)
}

var linkLocal4 = netip.MustParsePrefix("169.254.0.0/16")

// Classify returns the event.Class* value for destination a. It does not
// allocate.
func (c *Classifier) Classify(a netip.Addr) string {
	if !a.IsValid() {
		return event.Unknown
	}
	a = a.Unmap()
	if a.IsLoopback() || a.IsUnspecified() {
		// connect(0.0.0.0) reaches the local host.
		return event.ClassLoopback
	}
	st := c.cur.Load()
	if _, ok := st.metadata[a]; ok {
		return event.ClassMetadata
	}
	if _, ok := st.node[a]; ok {
		return event.ClassNode
	}
	if _, ok := st.cluster[a]; ok {
		return event.ClassPod
	}
	for _, p := range st.pod {
		if p.Contains(a) {
			return event.ClassPod
		}
	}
	if linkLocal4.Contains(a) {
		// Link-local IPv4 is where clouds put their instance services
		// (metadata, time, DNS on 169.254.169.253, ECS on 169.254.170.2).
		return event.ClassMetadata
	}
	return event.ClassExternal
}

// Refresh reads the host's addresses and routes through netlink.
func (c *Classifier) Refresh() error {
	c.refreshes.Add(1)
	links, err := netlink.LinkList()
	if err != nil {
		c.refreshErrors.Add(1)
		return fmt.Errorf("list links: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		c.refreshErrors.Add(1)
		return fmt.Errorf("list addresses: %w", err)
	}
	var node, cluster []netip.Addr
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		if hasPrefixAny(names[a.LinkIndex], serviceIfaces) {
			cluster = append(cluster, ip)
			continue
		}
		node = append(node, ip)
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		c.refreshErrors.Add(1)
		return fmt.Errorf("list routes: %w", err)
	}
	var pods []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil || !hasPrefixAny(names[r.LinkIndex], cniPrefixes) {
			continue
		}
		ip, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		ip = ip.Unmap()
		if ones < 8 || ones > ip.BitLen() {
			continue // a default or bogus route is not a pod network
		}
		pods = append(pods, netip.PrefixFrom(ip, ones).Masked())
	}
	c.install(node, cluster, pods)
	return nil
}

// Run refreshes now, then on every address or route change and every
// Resync, until ctx is done. A broken subscription is retried; Run returns
// only ctx's error, or the first Refresh error when netlink is unusable.
func (c *Classifier) Run(ctx context.Context) error {
	if err := c.Refresh(); err != nil {
		return err
	}
	log := c.opts.Logger
	for ctx.Err() == nil {
		done := make(chan struct{})
		addrCh := make(chan netlink.AddrUpdate, 64)
		routeCh := make(chan netlink.RouteUpdate, 64)
		onErr := func(err error) { log.Debug("netlink subscription error", "err", err) }
		errA := netlink.AddrSubscribeWithOptions(addrCh, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr})
		errR := netlink.RouteSubscribeWithOptions(routeCh, done, netlink.RouteSubscribeOptions{ErrorCallback: onErr})
		if err := errors.Join(errA, errR); err != nil {
			log.Warn("netlink subscribe failed; polling instead", "err", err, "every", c.opts.Resync)
		}
		c.loop(ctx, addrCh, routeCh)
		close(done)
		if ctx.Err() == nil {
			// A subscription broke: resubscribe after a pause, and read
			// everything again because updates may have been missed.
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			if err := c.Refresh(); err != nil {
				log.Warn("netlink refresh failed", "err", err)
			}
		}
	}
	return ctx.Err()
}

// loop returns when ctx is done or a subscription channel closes.
func (c *Classifier) loop(ctx context.Context, addrCh chan netlink.AddrUpdate, routeCh chan netlink.RouteUpdate) {
	tick := time.NewTicker(c.opts.Resync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-addrCh:
			if !ok {
				return
			}
		case _, ok := <-routeCh:
			if !ok {
				return
			}
		case <-tick.C:
		}
		c.updates.Add(1)
		// Coalesce a burst of notifications into one refresh.
		drain(addrCh, routeCh)
		if err := c.Refresh(); err != nil {
			c.opts.Logger.Warn("netlink refresh failed", "err", err)
		}
	}
}

func drain(a chan netlink.AddrUpdate, r chan netlink.RouteUpdate) {
	for {
		select {
		case _, ok := <-a:
			if !ok {
				return
			}
		case _, ok := <-r:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// Counters returns refresh and update counts, keyed for Enricher.Counters.
func (c *Classifier) Counters() map[string]uint64 {
	return map[string]uint64{
		"netclass_refreshes":      c.refreshes.Load(),
		"netclass_refresh_errors": c.refreshErrors.Load(),
		"netclass_updates":        c.updates.Load(),
	}
}
