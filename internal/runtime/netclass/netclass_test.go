package netclass

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

func TestClassifyStatic(t *testing.T) {
	c, err := New(Config{
		PodCIDRs:      []string{"10.244.0.0/16", "fd10::/64"},
		ServiceCIDRs:  []string{"10.96.0.0/12"},
		NodeIPs:       []string{"10.200.1.1"},
		MetadataAddrs: config.DefaultMetadataAddrs,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want string
	}{
		{"127.0.0.1", event.ClassLoopback},
		{"127.8.9.10", event.ClassLoopback},
		{"::1", event.ClassLoopback},
		{"0.0.0.0", event.ClassLoopback},
		{"::ffff:127.0.0.1", event.ClassLoopback},
		{"10.200.1.1", event.ClassNode},
		{"::ffff:10.200.1.1", event.ClassNode},
		{"10.244.3.7", event.ClassPod},
		{"fd10::5", event.ClassPod},
		{"10.96.0.10", event.ClassPod},
		{"169.254.169.254", event.ClassMetadata},
		{"fd00:ec2::254", event.ClassMetadata},
		{"169.254.170.2", event.ClassMetadata},
		{"100.100.100.200", event.ClassMetadata},
		{"169.254.1.1", event.ClassMetadata},
		{"10.200.2.2", event.ClassExternal},
		{"8.8.8.8", event.ClassExternal},
		{"2001:db8::1", event.ClassExternal},
	}
	for _, tt := range tests {
		if got := c.Classify(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Classify(%s) = %s; want %s", tt.addr, got, tt.want)
		}
	}
	if got := c.Classify(netip.Addr{}); got != event.Unknown {
		t.Errorf("invalid address: %s; want unknown", got)
	}
	a := netip.MustParseAddr("10.244.3.7")
	if n := testing.AllocsPerRun(100, func() { c.Classify(a) }); n != 0 {
		t.Errorf("Classify allocates %v times", n)
	}
}

func TestNewBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{PodCIDRs: []string{"10.0.0.0/40"}},
		{NodeIPs: []string{"x"}},
		{MetadataAddrs: []string{"metadata"}},
	} {
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("New(%+v): no error", cfg)
		}
	}
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// TestRunFollowsAddressChanges adds an address to a new veth and waits for
// the subscription to make it a node address; the peer's address, in a test
// network namespace, stays external. Routes on CNI-named interfaces become
// pod networks.
func TestRunFollowsAddressChanges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for netns and veth")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2")
	}
	id := os.Getpid() % 10000
	ns := fmt.Sprintf("kst-nc-%d", id)
	host := fmt.Sprintf("kvh%d", id)
	peer := fmt.Sprintf("kvp%d", id)
	cni := fmt.Sprintf("cni-kt%d", id)
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", host).Run()
		_ = exec.Command("ip", "link", "del", cni).Run()
		_ = exec.Command("ip", "netns", "del", ns).Run()
	})
	c, err := New(Config{}, &Options{Resync: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	nodeIP := netip.MustParseAddr("10.231.77.1")
	peerIP := netip.MustParseAddr("10.231.77.2")
	podIP := netip.MustParseAddr("10.232.5.9")
	// Wait for the first refresh, then change the host.
	waitFor(t, func() bool { return c.Counters()["netclass_refreshes"] >= 1 })
	if got := c.Classify(nodeIP); got != event.ClassExternal {
		t.Fatalf("before the veth: %s = %s; want external", nodeIP, got)
	}
	run(t, "ip", "netns", "add", ns)
	run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", peer)
	run(t, "ip", "link", "set", peer, "netns", ns)
	run(t, "ip", "addr", "add", nodeIP.String()+"/24", "dev", host)
	run(t, "ip", "link", "set", host, "up")
	run(t, "ip", "-n", ns, "addr", "add", peerIP.String()+"/24", "dev", peer)
	run(t, "ip", "-n", ns, "link", "set", peer, "up")
	run(t, "ip", "link", "add", cni, "type", "veth", "peer", "name", "p"+cni)
	run(t, "ip", "link", "set", "p"+cni, "netns", ns)
	run(t, "ip", "link", "set", cni, "up")
	run(t, "ip", "route", "add", "10.232.5.0/24", "dev", cni)
	waitFor(t, func() bool { return c.Classify(nodeIP) == event.ClassNode && c.Classify(podIP) == event.ClassPod })
	if got := c.Classify(peerIP); got != event.ClassExternal {
		t.Errorf("peer in netns %s = %s; want external", peerIP, got)
	}
	if c.Counters()["netclass_updates"] == 0 {
		t.Error("no netlink update counted")
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Run returned %v; want context.Canceled", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
