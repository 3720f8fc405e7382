package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// worker runs one storm and prints on stdout its elapsed wall-clock
// nanoseconds and the CPU nanoseconds (user + system, of the worker and its
// children) it used.
//
//	open <path> <n>       n x open(path, O_RDONLY) + close
//	openrel <path> <n>    the same, relative: chdir to dir(path), open base(path)
//	openlist <file> <n>   n opens (O_RDONLY) cycling through the paths listed in
//	                      file, one per line; failed opens count like others
//	getppid - <n>         n x getppid, a syscall the sensor does not watch
//	exec <binary> <n>     n x fork+exec+wait of binary
//	connect - <n>         n x TCP connect to a loopback listener, send 1 KiB, close
//	udp - <n>             n x sendto of 1 KiB on one unconnected UDP socket, to
//	                      four loopback ports in turn (nothing listens)
func worker(kind string, args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "worker: want <arg> <n>")
		return 2
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n <= 0 {
		fmt.Fprintf(os.Stderr, "worker: bad count %q\n", args[1])
		return 2
	}
	var elapsed time.Duration
	cpu0 := cpuTime()
	switch kind {
	case "open":
		elapsed, err = openStorm(args[0], n)
	case "openrel":
		if err = os.Chdir(filepath.Dir(args[0])); err == nil {
			elapsed, err = openStorm(filepath.Base(args[0]), n)
		}
	case "openlist":
		elapsed, err = openListStorm(args[0], n)
	case "getppid":
		elapsed = getppidStorm(n)
	case "exec":
		elapsed, err = execStorm(args[0], n)
	case "connect":
		elapsed, err = connectStorm(n)
	case "udp":
		elapsed, err = udpStorm(n)
	default:
		err = fmt.Errorf("unknown storm %q", kind)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	fmt.Println(elapsed.Nanoseconds(), (cpuTime() - cpu0).Nanoseconds())
	return 0
}

// cpuTime is the user and system time of this process and its waited-for
// children. On a shared machine it is steadier than wall time: time spent
// waiting for a CPU does not count, the syscalls and the BPF programs they
// run do.
func cpuTime() time.Duration {
	var self, kids unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &self)
	unix.Getrusage(unix.RUSAGE_CHILDREN, &kids)
	tv := func(t unix.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

func openStorm(path string, n int) (time.Duration, error) {
	start := time.Now()
	for range n {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("open %s: %w", path, err)
		}
		unix.Close(fd)
	}
	return time.Since(start), nil
}

func openListStorm(list string, n int) (time.Duration, error) {
	data, err := os.ReadFile(list)
	if err != nil {
		return 0, err
	}
	paths := strings.Fields(string(data))
	if len(paths) == 0 {
		return 0, fmt.Errorf("%s lists no paths", list)
	}
	opened := 0
	start := time.Now()
	for i := range n {
		fd, err := unix.Open(paths[i%len(paths)], unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
			opened++
		}
	}
	elapsed := time.Since(start)
	if opened == 0 {
		return 0, fmt.Errorf("no path of %s could be opened", list)
	}
	return elapsed, nil
}

func getppidStorm(n int) time.Duration {
	start := time.Now()
	for range n {
		unix.Getppid()
	}
	return time.Since(start)
}

func execStorm(bin string, n int) (time.Duration, error) {
	start := time.Now()
	for range n {
		if err := exec.Command(bin).Run(); err != nil {
			return 0, fmt.Errorf("exec %s: %w", bin, err)
		}
	}
	return time.Since(start), nil
}

func connectStorm(n int) (time.Duration, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	buf := make([]byte, 1024)
	addr := ln.Addr().String()
	start := time.Now()
	for range n {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			return 0, fmt.Errorf("dial %s: %w", addr, err)
		}
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, fmt.Errorf("send: %w", err)
		}
		c.Close()
	}
	return time.Since(start), nil
}

// udpStorm sends n datagrams with sendto on one unconnected socket: every
// send carries its destination, the path of DNS, QUIC and UDP exfiltration.
func udpStorm(n int) (time.Duration, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	var dst [4]unix.SockaddrInet4
	for i := range dst {
		dst[i] = unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: 9 + i} // discard and friends: nothing listens
	}
	buf := make([]byte, 1024)
	start := time.Now()
	for i := range n {
		// Unreachable ports answer with ICMP errors, which an unconnected
		// socket does not report: every send succeeds.
		if err := unix.Sendto(fd, buf, 0, &dst[i%len(dst)]); err != nil {
			return 0, fmt.Errorf("sendto: %w", err)
		}
	}
	return time.Since(start), nil
}
