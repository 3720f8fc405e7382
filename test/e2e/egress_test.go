package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEgressClassesThroughTheSensor connects to 127.0.0.1, to an address of
// this node, and to a host in a test network namespace behind a veth, and
// checks the classes the sensor puts on the connect events, and the bytes it
// counts on the way out.
func TestEgressClassesThroughTheSensor(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("needs iproute2 (ip)")
	}
	dir := t.TempDir()
	bin := buildSensor(t, dir)

	n := os.Getpid() % 200
	ns, hostIf, nsIf := fmt.Sprintf("kt-eg%d", n), fmt.Sprintf("kth%d", n), fmt.Sprintf("ktn%d", n)
	hostIP, remoteIP := fmt.Sprintf("10.251.%d.1", n), fmt.Sprintf("10.251.%d.2", n)
	ipc := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v %s", strings.Join(args, " "), err, out)
		}
	}
	ipc("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run(); exec.Command("ip", "link", "del", hostIf).Run() })
	ipc("link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	ipc("link", "set", nsIf, "netns", ns)
	ipc("addr", "add", hostIP+"/24", "dev", hostIf)
	ipc("link", "set", hostIf, "up")
	ipc("-n", ns, "addr", "add", remoteIP+"/24", "dev", nsIf)
	ipc("-n", ns, "link", "set", nsIf, "up")
	ipc("-n", ns, "link", "set", "lo", "up")

	// Listeners: loopback and the node address in this process; the remote
	// one inside the namespace, discarding what it reads.
	lo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	node, err := net.Listen("tcp", hostIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	for _, l := range []net.Listener{lo, node} {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					buf := make([]byte, 64<<10)
					for {
						if _, err := c.Read(buf); err != nil {
							c.Close()
							return
						}
					}
				}()
			}
		}()
	}
	remote := exec.Command("ip", "netns", "exec", ns, "python3", "-c",
		"import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('"+remoteIP+"', 9099)); s.listen(4)\n"+
			"while True:\n c,_=s.accept()\n while c.recv(65536): pass\n c.close()")
	if err := remote.Start(); err != nil {
		t.Fatal(err)
	}
	defer remote.Process.Kill()

	cfg := filepath.Join(dir, "sensor.yaml")
	os.WriteFile(cfg, []byte("log_level: warn\ncontext:\n  cri_socket: \"off\"\ngpu:\n  source: \"off\"\ncapture:\n  egress_report_interval: 500ms\n"), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sensor := exec.CommandContext(ctx, bin, "--tail", "--in-process", "-o", "json", "--kind", "connect,egress", "--config", cfg)
	sensor.Cancel = func() error { return sensor.Process.Signal(os.Interrupt) }
	sensor.WaitDelay = 10 * time.Second
	out, _ := sensor.StdoutPipe()
	var serr safeBuffer
	sensor.Stderr = &serr
	if err := sensor.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); sensor.Wait() }()
	lines, ready := collectRaw(out)
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatalf("sensor not ready: %s", serr.String())
	}

	const payload = 2 << 20
	targets := map[string]string{
		lo.Addr().String():                 "loopback",
		node.Addr().String():               "node",
		net.JoinHostPort(remoteIP, "9099"): "external",
	}
	for addr := range targets {
		var c net.Conn
		for i := 0; i < 50; i++ { // the remote listener may still be starting
			if c, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		if _, err := c.Write(make([]byte, payload)); err != nil {
			t.Fatalf("send to %s: %v", addr, err)
		}
		c.Close()
	}

	pid := os.Getpid()
	deadline := time.Now().Add(20 * time.Second)
	for {
		classes, bytes := map[string]string{}, map[string]uint64{}
		for _, m := range lines.snapshot() {
			p, _ := m["process"].(map[string]any)
			nt, _ := m["net"].(map[string]any)
			if p == nil || nt == nil || int(p["pid"].(float64)) != pid {
				continue
			}
			addr := net.JoinHostPort(fmt.Sprint(nt["daddr"]), fmt.Sprint(nt["dport"]))
			if m["kind"] == "connect" {
				classes[addr] = fmt.Sprint(nt["class"])
			}
			if m["kind"] == "egress" && nt["closed"] == true {
				bytes[addr] = uint64(nt["bytes_sent"].(float64))
			}
		}
		done := true
		for addr, want := range targets {
			if classes[addr] != want || bytes[addr] == 0 {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			for addr, want := range targets {
				if classes[addr] != want {
					t.Errorf("connect to %s: class %q; want %q", addr, classes[addr], want)
				}
				if b := bytes[addr]; b < payload*9/10 || b > payload*11/10 {
					t.Errorf("egress to %s: %d bytes at close; want %d within 10%%", addr, b, payload)
				}
			}
			t.Logf("classes %v, bytes at close %v", classes, bytes)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}
