package rulesdoc

// falsePositives holds, per rule, what legitimately looks like an attack to
// it and how to quiet that. The registry has no field for it yet, so it
// lives here; TestNotesNameRealRules fails on a note for a rule the
// registry does not have, and the reference says so for a rule without one.
var falsePositives = map[string]string{
	"ESC-001": "Hosts on cgroup v1 write `release_agent` at boot, but from the host, which the rule does not judge. A " +
		"privileged node agent that manages cgroup v1 from a container is rare; allow it by image " +
		"(`container_image_allowlist`) or cgroup (`rules.ESC-001.allow_cgroup`).",
	"ESC-002": "Nothing legitimate in a container writes these knobs. On the host, `systemd-sysctl`, `apport` and " +
		"`systemd-coredump` set `core_pattern` at boot; host processes are out of scope.",
	"ESC-003": "The distribution's own usermode helpers (`modprobe`, `request-key`, `systemd-coredump` or `apport`, " +
		"`bridge-stp`, `nfsdcltrack`, reboot and poweroff helpers). Add the ones your distribution uses to " +
		"`umh_allowlist`.",
	"ESC-004": "Privileged node agents that enter host namespaces on purpose: CNI and CSI plugins (Calico, Cilium, " +
		"Multus), node-problem-detector, other security sensors. Allow them by image.",
	"ESC-005": "Node monitoring agents that read the host through a mount (`node-exporter --path.rootfs=/host`, log " +
		"shippers, scanners). Allow them by image or cgroup.",
	"ESC-006": "CI builders (Docker-in-Docker, BuildKit), GitOps agents, the GPU operator's validators and the device " +
		"plugin (the kubelet pod-resources socket). Allow them by image or cgroup; keep `kubectl` toolboxes in their " +
		"own namespace.",
	"ESC-007": "CSI node plugins, storage agents and the NVIDIA driver container, which mount and load on the host " +
		"by design. Raw block volumes (`volumeDevices`) are made with mknod by the runtime in the pod's cgroup. " +
		"Allow them by image or cgroup.",
	"ESC-008": "The NVIDIA driver container and GPU operator (loading `nvidia-uvm`), and eBPF-based agents (Cilium, " +
		"Pixie, other sensors). Allow them by image or executable (`rules.ESC-008.allow_exe`). Host processes such " +
		"as `nvidia-container-cli --load-kmods` are not containers and do not match.",
	"ESC-009": "Package upgrades of the runtime binaries on the host. Declare extra runtime binary locations in " +
		"`runtime_binaries_extra`.",
	"ESC-010": "Sandboxes that create user namespaces (Chromium, bubblewrap, rootless BuildKit). The posture half " +
		"fires at info or low for privileged pods by design: it is context, not a page.",
	"ESC-011": "Debuggers and profilers run from a hostPID toolbox pod against host daemons (gdb, strace, py-spy " +
		"with `--pid`), and node agents that read other processes' memory on purpose. Allow their pods by image or " +
		"cgroup (`rules.ESC-011.allow_cgroup`); a process in its own PID namespace reaches only its pod and never " +
		"matches.",
	"NVT-001": "None known: NVIDIA hooks never need a preload. Site-wide preloads from `/etc/ld.so.preload` are not " +
		"in the environment and do not match.",
	"NVT-002": "New toolkit versions add hook children; extend `nv_hook_child_allowlist` when you upgrade. The GPU " +
		"operator's validators run as containers, not as hook children.",
	"NVT-003": "On some nodes `nvidia-container-cli` talks to the `nvidia-persistenced` or `nvidia-fabricmanager` " +
		"sockets; those are not matched.",
	"NVT-004": "None expected: no legitimate path uses a driver library's name as a directory.",
	"EXE-001": "Allocator preloads in inference images (jemalloc, tcmalloc): list the exact values in " +
		"`preload_allowlist`. `ldconfig`, package managers and NVIDIA hooks rewriting the loader cache are exempt.",
	"EXE-002": "Programs installed at container start (`pip install` console scripts) fall inside `startup_grace`. " +
		"runc's own memfd is exempt; JIT caches (Triton, torch inductor) are loaded, not executed, and do not match.",
	"EXE-003": "On-call debugging with `kubectl exec -it`. The rule is low on purpose: route it to audit, not to a " +
		"pager.",
	"EXE-004": "Images whose entrypoint installs packages at start (inside `startup_grace`, or as a direct child of " +
		"the entrypoint shell); notebook namespaces, which `inference_selector` should not select.",
	"CRED-001": "Kubernetes-aware servers (Ray or KubeRay heads, operators) that talk to the API server: allow them " +
		"with `rules.CRED-001.allow_exe`. Serving pods should not mount a token at all " +
		"(`automountServiceAccountToken: false`).",
	"CRED-002": "Cloud SDKs (boto3, google-auth) probing the metadata service for a region at start: allowed for the " +
		"container's main process during `startup_grace`; list other legitimate clients in `imds_allowlist`.",
	"CRED-003": "The credential's own consumer (the server reading its Hugging Face token at start) is exempt. Allow " +
		"other tools with `rules.CRED-003.allow_exe`.",
	"C2-001": "`socat` and `nc` in network-debugging images, and inetd-style services (rare in containers). A socket " +
		"dup'ed onto stdio without an outbound TCP connect nearby stays low: `scp` does that with a socketpair.",
	"GPU-001": "Compilers run by `torch.compile` and Triton JIT (sometimes through `sh -c`), multiprocessing workers " +
		"of vLLM and Ray, `nvidia-smi --query-*`. List them in `gpu_child_allowlist`.",
	"GPU-002": "Rolling updates and autoscaling (judged per image and workload, not per container id), notebooks and " +
		"batch jobs, NCCL and MPS helpers. List legitimate owners in `gpu_workload_allowlist` and node agents in " +
		"`gpu_agent_allowlist`.",
	"GPU-003": "GPU agents (device plugin, DCGM exporter, feature discovery, operator validators, driver container) " +
		"open every GPU: list them in `gpu_agent_allowlist`. Images that set `NVIDIA_VISIBLE_DEVICES=all` without a " +
		"GPU request show up here by design.",
	"GPU-004": "Profiling sessions in development namespaces. Crash handlers read memory through core dumps, not " +
		"opens, and do not match.",
	"GPU-005": "Download and init containers, model-sync sidecars, fine-tuning jobs writing checkpoints: list them in " +
		"`model_updaters` (by the executable's name, which must be a system binary the container did not write). " +
		"Hugging Face `.incomplete` and `.lock` files are ignored, and a new blob landing in a Hugging Face or " +
		"Ollama blob store, with its snapshot symlink, is a load, not tampering.",
	"GPU-006": "Multi-node tensor or pipeline parallelism (NCCL or Gloo to peer pods), disaggregated prefill/decode " +
		"and KV-cache transfer, metrics and trace push, webhooks, model downloads at start. Where `egress_allowlist` " +
		"lists nothing beyond loopback for the workload (the default) these are low until a socket carries " +
		"model-scale bytes; list the pod CIDR and the endpoints to make anything else high.",
	"GPU-007": "The GPU operator's MIG manager, driver and validator pods, and node maintenance tools: list them in " +
		"`gpu_agent_allowlist`.",
	"GPU-008": "None expected for miner names and stratum URLs. The pool-port list is wide, so port matches need the " +
		"GPU or inference context.",
	"EXF-001": "Backup agents (Velero, restic, kopia), model-download init containers verifying hashes, model-sync " +
		"sidecars, and workers that read weights before they own GPU memory (Triton Python backend stubs, TGI " +
		"shards). List loaders by executable path in `loader_allowlist` and legitimate destinations in " +
		"`egress_allowlist`. Scanners that read but never send do not fire, and a checksum job followed by small " +
		"API calls or log shipping is low: only model-scale bytes (10 % of the weights, 64 KiB to 1 MiB) are high.",
	"EXF-002": "Downloads (`curl -o`, `aws s3 cp s3://… /models`) are not uploads and do not match. Log shippers " +
		"belong in their own containers.",
	"EXF-003": "Training and fine-tuning jobs uploading checkpoints (allow their bucket endpoints; a serving pod " +
		"should not upload), telemetry exporters, multi-node NCCL over TCP (allow the pod CIDR).",
	"EXF-004": "Entrypoints unpacking a model archive (extraction does not match), TensorRT engine builds writing " +
		"their cache, `hf_transfer`. Archives made during `startup_grace` stay medium.",
	"EXF-005": "Operators copying logs out with `kubectl cp`. Govern who may exec into pods on the API side.",
	"EXF-006": "Readiness scripts that check that the model is present. Low on purpose: it is correlation for EXF-001.",
	"SELF-001": "None expected: only a process with `CAP_BPF` or `CAP_SYS_ADMIN` changes the sensor's links or " +
		"maps. An operator running `bpftool link detach` or `bpftool map update` against the sensor's ids, or a " +
		"second eBPF tool that detaches every cgroup link it finds, does.",
	"SELF-002": "Stopping the pod: the container runtime sends `SIGTERM` from the host (high, not critical); node " +
		"shutdown; an operator's `kill`. The OOM killer's `SIGKILL` is kernel-generated (high). Exempt a node " +
		"agent that restarts the sensor with `rules.SELF-002.allow_exe`.",
	"SELF-003": "An operator debugging the sensor with `gdb -p`, `strace -p` or a profiler that reads its memory.",
	"SELF-004": "A node so short of CPU that the reader waited 2 s for one: the run-queue wait tells it from a stop, " +
		"and starvation is low. Live migration of the VM can look like a stop.",
}
