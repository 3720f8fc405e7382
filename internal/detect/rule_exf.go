package detect

import (
	"strings"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// EXF — model-weight exfiltration (docs/rules.md, EXF-001…006).

type exf001 struct{ baseRule }

func newEXF001(*Settings) Rule {
	return &exf001{baseRule{Meta{
		ID:       "EXF-001",
		Title:    "Model weights read by a non-owner, then egress to a non-allowlisted destination",
		MITRE:    []string{"T1041", "T1048", "AML.T0025", "AML.T0035", "AML.T0048.004"},
		Severity: event.SevCritical,
		Description: "A process that owns no GPU and is not a loader (loader_allowlist by exe path; system " +
			"binaries that are package managers or downloaders; on the host only, runtimes and NVIDIA hooks) opens " +
			"model weights for reading (raw or resolved path, size >= model_min_bytes). The taint spreads to files " +
			"it writes, to readers of those files, to its children, to pipeline peers (live siblings), to its " +
			"container and to the other containers of its pod (pod UID, or the network namespace they share) for " +
			"exfil_window. A sender with no taint that holds a model file or a tainted copy by descriptor or " +
			"mapping (an inherited or passed fd, weights opened before the sensor started or before the window) " +
			"is tainted when it sends: the kernel is asked at its connect when a GPU owner or weight reader is " +
			"among its ancestors, else once a socket carried model-scale bytes. Egress to a destination outside " +
			"egress_allowlist is low below model-scale bytes (10 % of the largest tainted file, 64 KiB to 1 MiB: an " +
			"API call or a checksum), high above, critical at min(64 MiB, 50 % of the file), counted over the " +
			"connections to one destination network; pod and held taint fire at model scale only. A tainted " +
			"process connecting to a runtime socket (not the read-only kubelet pod-resources or " +
			"nvidia-persistenced ones) or running a transfer tool fires high. A reader that " +
			"becomes a GPU owner within promote_grace was a loader: its triggers wait until the taint is confirmed " +
			"(written to a file, read by another process, reader exited) or the grace is over, and are dropped " +
			"when it is promoted.",
		Knobs: []string{"exfil_window", "promote_grace", "egress_allowlist", "loader_allowlist", "model_roots",
			"model_min_bytes"},
		Kinds: kinds(event.KindExec, event.KindFork, event.KindExit, event.KindOpen, event.KindConnect,
			event.KindEgress, event.KindSyscall, event.KindGPU),
	}}}
}

func (r *exf001) Eval(ctx *Context, ev *event.Event) {
	a := ctx.eng.ai
	for i := range a.out {
		a.emitTrigger(ctx, &a.out[i])
	}
	a.out = a.out[:0]
}

// flushAI releases the EXF-001 triggers whose wait is over by now, through
// the EXF-001 rule when it is enabled.
func (e *Engine) flushAI(now time.Time) {
	e.ai.renewHeld(e.state, now)
	e.ai.release(now)
	if len(e.ai.out) == 0 {
		return
	}
	for _, s := range e.slots {
		if s.meta.ID == "EXF-001" {
			s.ctx.Now = now
			for i := range e.ai.out {
				e.ai.emitTrigger(&s.ctx, &e.ai.out[i])
			}
			break
		}
	}
	e.ai.out = e.ai.out[:0]
}

func (a *aiState) emitTrigger(ctx *Context, t *exfTrigger) {
	src := t.src
	files := a.sourceFiles(src)
	sender := t.sender
	attrs := map[string]string{
		"condition":      t.cond,
		"model_files":    files,
		"reader_pid":     itoa(uint64(src.reader)),
		"reader_exe":     src.readerExe,
		"sender_pid":     itoa(uint64(sender.PID)),
		"sender_exe":     sender.Exe,
		"taint_via":      t.via,
		"stage":          t.stage,
		"critical_bytes": itoa(src.criticalBytes()),
	}
	if src.cid != "" {
		attrs["reader_container"] = src.cid
	}
	if c := t.ev.Container; c != nil {
		attrs["container"] = c.ID
		if c.Pod != "" && c.Pod != event.Unknown {
			attrs["pod"] = c.Namespace + "/" + c.Pod
		}
	}
	reader := baseName(src.readerExe) + " (pid " + itoa(uint64(src.reader)) + ")"
	var what string
	switch t.cond {
	case "egress":
		attrs["destination"] = t.dest
		attrs["class"] = t.class
		attrs["bytes_sent"] = itoa(t.bytes)
		if t.origin != "" {
			attrs["origin"] = t.origin
		}
		what = "sent " + itoa(t.bytes) + " bytes to " + t.dest + " (" + t.class + ")"
		if t.destBytes > t.bytes {
			attrs["bytes_to_destination"] = itoa(t.destBytes)
			what += ", " + itoa(t.destBytes) + " over its connections to that network"
		}
		switch {
		case t.bytes == 0:
			what = "connected to " + t.dest + " (" + t.class + "; bytes follow)"
		case t.origin == event.OriginAccept:
			what = "served " + itoa(t.bytes) + " bytes to " + t.dest + " (" + t.class + "), which connected in"
		case t.origin == event.OriginDatagram:
			what += " in datagrams, without a connection"
		}
	case "runtime_socket":
		attrs["destination"] = t.dest
		attrs["class"] = event.ClassUnix
		what = "connected to runtime socket " + t.dest
	case "transfer_tool":
		attrs["tool"] = t.dest
		what = "ran transfer tool " + t.dest + " (" + cmdline(sender) + ")"
	}
	expl := who(t.ev) + " in " + where(t.ev) + " " + what + " after "
	if src.reader == sender.PID {
		expl += "reading model weights " + files + "."
	} else {
		expl += reader + " read model weights " + files + " (taint via " + t.via + ")."
	}
	ctx.Emit(t.ev, Report{
		Key:         t.cond + ":" + t.dest + ":" + t.stage,
		Severity:    t.sev,
		Explanation: expl,
		Attrs:       attrs,
	})
}

// transferTools are EXF-002's upload and tunnel tools matched by name alone.
var transferTools = []string{"scp", "sftp", "rsync", "rclone", "s3cmd", "s5cmd", "mc", "azcopy", "ossutil",
	"ossutil64", "coscmd", "oss", "b2", "restic", "rustic", "kopia", "croc", "wormhole", "magic-wormhole",
	"ngrok", "cloudflared", "frpc", "chisel", "socat", "nc", "ncat", "netcat", "ssh", "transfer"}

// transferCandidates are the basenames transferTool looks at further.
var transferCandidates = func() map[string]bool {
	m := map[string]bool{"aws": true, "gsutil": true, "gcloud": true, "huggingface-cli": true, "hf": true,
		"git": true, "git-lfs": true, "curl": true, "wget": true, "httpd": true, "busybox": true}
	for _, t := range transferTools {
		m[t] = true
	}
	return m
}()

// positional fills buf with the first arguments after argv[0] that are no
// options, without allocating.
func positional(args []string, buf *[8]string) []string {
	n := 0
	for i := 1; i < len(args) && n < len(buf); i++ {
		if a := args[i]; a != "" && a[0] != '-' {
			buf[n] = a
			n++
		}
	}
	return buf[:n]
}

// isRemote reports whether a copy operand names remote storage.
func isRemote(s string) bool {
	if strings.Contains(s, "://") {
		return true
	}
	i := strings.IndexByte(s, ':')
	return i > 0 && !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, ".")
}

// downloadOnly reports whether copy operands (source first, destination
// last) go from remote storage to a local path: the download direction.
func downloadOnly(ops []string) bool {
	return len(ops) >= 2 && isRemote(ops[0]) && !isRemote(ops[len(ops)-1])
}

// transferTool names the upload/transfer tool p runs (EXF-002), or "".
func transferTool(p *event.Process) string {
	if p == nil {
		return ""
	}
	b := argv0Base(p)
	eb := exeBase(p)
	if !transferCandidates[b] && !transferCandidates[eb] && !isInterpreter(b) {
		return ""
	}
	args := p.Args
	var buf [8]string
	pos := positional(args, &buf)
	sub := func(i int) string {
		if i < len(pos) {
			return pos[i]
		}
		return ""
	}
	rest := func(i int) []string {
		if i < len(pos) {
			return pos[i:]
		}
		return nil
	}
	switch {
	case in(b, transferTools...) || in(eb, transferTools...):
		name := b
		if !in(b, transferTools...) {
			name = eb
		}
		if in(name, "rclone", "s5cmd", "mc", "azcopy", "rsync", "scp", "ossutil", "ossutil64", "coscmd") {
			ops := pos
			if in(name, "rclone", "s5cmd", "mc", "azcopy", "ossutil", "ossutil64", "coscmd") && len(ops) > 0 {
				ops = ops[1:] // subcommand
			}
			if downloadOnly(ops) {
				return ""
			}
		}
		if name == "s3cmd" && in(sub(0), "get", "sync") && downloadOnly(rest(1)) {
			return ""
		}
		return name
	case b == "aws" || eb == "aws":
		if sub(0) == "s3" && in(sub(1), "cp", "sync", "mv") && !downloadOnly(rest(2)) {
			return "aws s3 " + sub(1)
		}
		if sub(0) == "s3api" && in(sub(1), "put-object", "upload-part", "upload-part-copy") {
			return "aws s3api " + sub(1)
		}
	case b == "gsutil" || eb == "gsutil":
		if in(sub(0), "cp", "rsync", "mv") && !downloadOnly(rest(1)) {
			return "gsutil " + sub(0)
		}
	case b == "gcloud" || eb == "gcloud":
		if sub(0) == "storage" && in(sub(1), "cp", "rsync", "mv") && !downloadOnly(rest(2)) {
			return "gcloud storage " + sub(1)
		}
	case in(b, "huggingface-cli", "hf") || in(eb, "huggingface-cli", "hf"):
		if in(sub(0), "upload", "upload-large-folder") {
			return b + " " + sub(0)
		}
	case b == "git" || eb == "git":
		if sub(0) == "push" || sub(0) == "lfs" && sub(1) == "push" {
			return "git push"
		}
	case b == "git-lfs" || eb == "git-lfs":
		if sub(0) == "push" {
			return "git-lfs push"
		}
	case b == "curl" || eb == "curl":
		for i := 1; i < len(args); i++ {
			x := args[i]
			switch {
			case in(x, "-T", "--upload-file", "-F", "--form") || strings.HasPrefix(x, "--upload-file=") ||
				strings.HasPrefix(x, "--form="):
				return "curl upload"
			case len(x) > 2 && x[0] == '-' && x[1] != '-' && (x[1] == 'T' || x[1] == 'F'):
				return "curl upload"
			case in(x, "-d", "--data", "--data-binary", "--data-raw", "--data-urlencode") && i+1 < len(args) &&
				strings.HasPrefix(args[i+1], "@") && x != "--data-raw":
				return "curl upload"
			case strings.HasPrefix(x, "-d@") || strings.HasPrefix(x, "--data=@") ||
				strings.HasPrefix(x, "--data-binary=@"):
				return "curl upload"
			}
		}
	case b == "wget" || eb == "wget":
		for i := 1; i < len(args); i++ {
			x := args[i]
			if in(x, "--post-file", "--body-file") || strings.HasPrefix(x, "--post-file=") ||
				strings.HasPrefix(x, "--body-file=") || strings.EqualFold(x, "--method=PUT") ||
				x == "--method" && i+1 < len(args) && strings.EqualFold(args[i+1], "PUT") {
				return "wget upload"
			}
		}
	case isInterpreter(b) && strings.HasPrefix(b, "python"):
		if v, ok := argValue(args, "-m", ""); ok && (v == "http.server" || v == "SimpleHTTPServer") {
			return "python http.server"
		}
	case b == "httpd" && eb == "busybox", b == "busybox" && sub(0) == "httpd":
		return "busybox httpd"
	}
	return ""
}

type exf002 struct{ baseRule }

func newEXF002(*Settings) Rule {
	return &exf002{baseRule{Meta{
		ID:       "EXF-002",
		Title:    "Upload/transfer tool executed in an inference container",
		MITRE:    []string{"T1048", "T1567.002", "T1105", "AML.T0025"},
		Severity: event.SevHigh,
		Description: "An inference container (or any container, when argv names a model file or root) runs an " +
			"upload or tunnel tool: scp, sftp, rsync, rclone, s3cmd, s5cmd, mc, azcopy, aws s3 cp/sync/mv, aws " +
			"s3api put-object, gsutil/gcloud storage cp, huggingface-cli/hf upload, git push, restic, kopia, croc, " +
			"ngrok, cloudflared, frpc, chisel, socat, nc, ssh …; curl with -T/--upload-file/-F/--form/-d @file; " +
			"wget --post-file/--body-file/--method=PUT; python -m http.server or busybox httpd. Copies from remote " +
			"storage to a local path (downloads) are not matched. Critical when the process holds EXF-001 taint.",
		Knobs: []string{"inference_selector"},
		Kinds: kinds(event.KindExec),
	}}}
}

func (r *exf002) Eval(ctx *Context, ev *event.Event) {
	if !inContainer(ev) || ev.Process == nil {
		return
	}
	p := ev.Process
	tool := transferTool(p)
	if tool == "" {
		return
	}
	a := ctx.eng.ai
	arg, named := a.modelArg(p)
	if !a.isInference(ctx.State, ev.Container) && !named {
		return
	}
	attrs := map[string]string{"tool": tool, "cmdline": cmdline(p)}
	if named {
		attrs["model_arg"] = arg
	}
	var sev event.Severity
	note := ""
	if src, via, _ := a.taintOf(p.PID, ctx.Now); src != nil {
		sev = event.SevCritical
		attrs["taint_via"] = via
		attrs["model_files"] = a.sourceFiles(src)
		note = " while holding model-weight taint"
	}
	ctx.Emit(ev, Report{
		Key:         "tool:" + tool,
		Severity:    sev,
		Explanation: who(ev) + " ran " + tool + " (" + cmdline(p) + ") in " + where(ev) + note + ".",
		Attrs:       attrs,
	})
}

type exf003 struct{ baseRule }

func newEXF003(*Settings) Rule {
	return &exf003{baseRule{Meta{
		ID:       "EXF-003",
		Title:    "Large outbound volume from an inference workload to a non-allowlisted destination",
		MITRE:    []string{"T1030", "T1041", "AML.T0025"},
		Severity: event.SevHigh,
		Description: "The bytes sent from one container to one destination (/24 for IPv4, /64 for IPv6) outside " +
			"egress_allowlist within 10 minutes reach exfil_bytes_threshold, from an inference container or one " +
			"that opened model files. Every inet socket counts: connected, unconnected (UDP sendto, raw, ICMP) and " +
			"accepted (a remote peer that connected in and pulls), except sockets the model server accepted (a GPU " +
			"owner, its lineage or the parent of one: serving responses is its job). Critical at 1 GiB or at the " +
			"size of the largest model file the container opened; a follow-up names the final volume when a " +
			"socket closes.",
		Knobs: []string{"exfil_bytes_threshold", "egress_allowlist", "inference_selector"},
		Kinds: kinds(event.KindEgress),
	}}}
}

func (r *exf003) Eval(ctx *Context, ev *event.Event) {
	n := ev.Net
	if !inContainer(ev) || n == nil || !n.DAddr.IsValid() || ev.Process == nil {
		return
	}
	a := ctx.eng.ai
	sk, ok := a.socks.Peek(sockKeyOf(n))
	if !ok || n.Cookie == 0 || sk.serving {
		return
	}
	bits := 24
	if sk.addr.Is6() && !sk.addr.Is4In6() {
		bits = 64
	}
	pfx, err := sk.addr.Unmap().Prefix(bits)
	if err != nil {
		return
	}
	b := a.buckets.Ptr(bucketKey{cid: ev.Container.ID, prefix: pfx})
	if b == nil || b.bytes < uint64(ctx.Settings.Config.ExfilBytesThreshold) {
		return
	}
	cs, _ := a.ctrs.Peek(ev.Container.ID)
	if !a.isInference(ctx.State, ev.Container) && cs.maxModel <= 0 {
		return
	}
	sev, stage := event.SevHigh, "high"
	crit := uint64(exf003Critical)
	if cs.maxModel > 0 && uint64(cs.maxModel) < crit {
		crit = uint64(cs.maxModel)
	}
	if b.bytes >= crit {
		sev, stage = event.SevCritical, "critical"
	}
	switch {
	case sev > b.level:
	case n.Closed && grew(b.reported, b.bytes):
		stage = "final"
	default:
		return
	}
	b.level, b.reported = sev, b.bytes
	dst := pfx.String()
	ctx.Emit(ev, Report{
		Key:      "dst:" + dst + ":" + stage,
		Severity: sev,
		Explanation: where(ev) + " sent " + itoa(b.bytes) + " bytes to " + dst + " (" + sk.class + ", last " +
			netipPort(sk) + " by " + who(ev) + ") within 10 minutes, over the exfil threshold of " +
			itoa(uint64(ctx.Settings.Config.ExfilBytesThreshold)) + " bytes.",
		Attrs: map[string]string{"destination": dst, "peer": netipPort(sk), "class": sk.class,
			"bytes_sent": itoa(b.bytes), "threshold": itoa(uint64(ctx.Settings.Config.ExfilBytesThreshold)),
			"stage": stage},
	})
}

func netipPort(sk aiSock) string {
	if sk.addr.Is6() && !sk.addr.Is4In6() {
		return "[" + sk.addr.String() + "]:" + itoa(uint64(sk.port))
	}
	return sk.addr.Unmap().String() + ":" + itoa(uint64(sk.port))
}

// archivers are EXF-004's archive, compress, split and encode tools.
var archivers = []string{"tar", "zip", "7z", "7za", "7zr", "rar", "gzip", "pigz", "zstd", "xz", "bzip2", "pbzip2",
	"lz4", "split", "base64", "base32", "openssl", "gpg", "age", "dd"}

var archiverSet = func() map[string]bool {
	m := make(map[string]bool, len(archivers))
	for _, a := range archivers {
		m[a] = true
	}
	return m
}()

// isArchiver reports whether p archives, compresses, splits or encodes
// (not extracts or decodes).
func isArchiver(p *event.Process) bool {
	b := argv0Base(p)
	if !archiverSet[b] {
		return false
	}
	switch b {
	case "tar":
		return tarCreates(p.Args)
	case "openssl":
		return len(p.Args) > 1 && p.Args[1] == "enc" && !hasArg(p.Args, "-d")
	case "gzip", "pigz", "zstd", "xz", "bzip2", "pbzip2", "lz4", "base64", "base32", "gpg", "age":
		return !hasArg(p.Args, "-d", "--decode", "--decompress", "--uncompress", "--decrypt", "-t", "--test", "-l", "--list")
	}
	return true
}

// tarCreates reports whether tar's arguments create an archive.
func tarCreates(args []string) bool {
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--create":
			return true
		case a == "--extract" || a == "--get" || a == "--list":
			return false
		case strings.HasPrefix(a, "--"):
		case strings.HasPrefix(a, "-"):
			if strings.ContainsAny(a[1:], "xt") {
				return false
			}
			if strings.ContainsRune(a[1:], 'c') {
				return true
			}
		case i == 1: // old-style bundled letters: "czf"
			if strings.ContainsAny(a, "xt") {
				return false
			}
			return strings.ContainsRune(a, 'c')
		}
	}
	return false
}

// stagingDirs are EXF-004's staging places besides the tmp directories.
var stagingMarkers = []string{"/volumes/kubernetes.io~empty-dir/", "/volumes/kubernetes.io~host-path/"}

func isStagingPath(p string) bool {
	if underAny(p, tmpDirs) {
		return true
	}
	for _, m := range stagingMarkers {
		if strings.Contains(p, m) {
			return true
		}
	}
	return false
}

type exf004 struct{ baseRule }

func newEXF004(*Settings) Rule {
	return &exf004{baseRule{Meta{
		ID:       "EXF-004",
		Title:    "Model artifact staging",
		MITRE:    []string{"T1074.001", "T1560.001", "AML.T0035"},
		Severity: event.SevMedium,
		Description: "In a container: an archive/compress/split/encode tool (tar c, zip, 7z, gzip, zstd, xz, " +
			"split, base64, openssl enc, gpg, age, dd; not extraction) names a model file or model root in argv, " +
			"or opens a model file for reading; or a process holding model-weight taint (EXF-001) creates a file " +
			"in /tmp, /var/tmp, /dev/shm or an emptyDir/hostPath volume (cp, python copies). High in an inference " +
			"container after startup_grace.",
		Knobs: []string{"model_roots", "startup_grace", "inference_selector"},
		Kinds: kinds(event.KindExec, event.KindOpen),
	}}}
}

func (r *exf004) Eval(ctx *Context, ev *event.Event) {
	if !inContainer(ev) || ev.Process == nil {
		return
	}
	a := ctx.eng.ai
	p := ev.Process
	severity := func() event.Severity {
		if a.isInference(ctx.State, ev.Container) &&
			!ctx.State.InStartupGrace(ev.Container, ctx.Now, ctx.Settings.Config.StartupGrace.D()) {
			return event.SevHigh
		}
		return 0
	}
	switch ev.Kind {
	case event.KindExec:
		if !isArchiver(p) {
			return
		}
		arg, ok := a.modelArg(p)
		if !ok {
			return
		}
		ctx.Emit(ev, Report{
			Key:         "exec:" + argv0Base(p) + ":" + arg,
			Severity:    severity(),
			Explanation: who(ev) + " archives/encodes model artifact " + arg + " (" + cmdline(p) + ") in " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "archiver_argv", "tool": argv0Base(p), "model_arg": arg},
		})
	case event.KindOpen:
		f := ev.File
		if f == nil || f.Result < 0 {
			return
		}
		if f.IsWrite() {
			if !isStagingPath(f.Path) {
				return
			}
			src, via, _ := a.taintOf(p.PID, ctx.Now)
			if src == nil || via == viaContainer {
				return
			}
			ctx.Emit(ev, Report{
				Key:      "stage:" + f.Path,
				Severity: severity(),
				Explanation: who(ev) + " wrote " + f.Path + " in " + where(ev) + " while holding model weights " +
					a.sourceFiles(src) + ".",
				Attrs: map[string]string{"condition": "tainted_write", "path": f.Path, "model_files": a.sourceFiles(src),
					"taint_via": via},
			})
			return
		}
		rec, ok := a.procs.Peek(p.PID)
		if !ok || rec.p == nil || f.Flags&event.ODirectry != 0 || !isArchiver(rec.p) {
			return
		}
		if !a.isModelFile(f, f.Size) {
			return
		}
		ctx.Emit(ev, Report{
			Key:         "read:" + itoa(uint64(p.PID)),
			Severity:    severity(),
			Explanation: who(ev) + " (" + cmdline(p) + ") read model file " + f.Path + " in " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "archiver_read", "tool": argv0Base(p), "path": f.Path},
		})
	}
}

// isKubectlCp reports whether p is tar creating an archive under the
// runtime exec path (a kubectl cp analogue): a runtime among its three
// nearest fork-time ancestors, no tty, not the container's entrypoint.
func isKubectlCp(s *Settings, p *event.Process, c *event.Container) bool {
	if c == nil || p.TTY || argv0Base(p) != "tar" || !tarCreates(p.Args) {
		return false
	}
	for i, an := range p.Ancestors {
		if i >= 3 {
			break
		}
		if s.IsRuntime(an.Exe) {
			return true
		}
	}
	return false
}

type exf005 struct{ baseRule }

func newEXF005(*Settings) Rule {
	return &exf005{baseRule{Meta{
		ID:       "EXF-005",
		Title:    "kubectl cp / exec-driven tar over model directories",
		MITRE:    []string{"T1609", "AML.T0025"},
		Severity: event.SevMedium,
		Description: "tar in create mode (c, -c, --create) runs in a container with a container runtime (runc, " +
			"crun, containerd-shim …, runtime_binaries_extra) among its nearest fork-time ancestors and no tty: " +
			"what `kubectl cp` from a pod does through the exec API. High once it opens model files.",
		Knobs: []string{"runtime_binaries_extra", "model_roots"},
		Kinds: kinds(event.KindExec, event.KindOpen),
	}}}
}

func (r *exf005) Eval(ctx *Context, ev *event.Event) {
	if !inContainer(ev) || ev.Process == nil {
		return
	}
	p := ev.Process
	a := ctx.eng.ai
	switch ev.Kind {
	case event.KindExec:
		if cs := ctx.State.Container(ev.Container.ID); cs != nil && cs.Entrypoint == p.PID {
			return
		}
		if !isKubectlCp(ctx.Settings, p, ev.Container) {
			return
		}
		ctx.Emit(ev, Report{
			Key:         "exec:" + itoa(uint64(p.PID)),
			Explanation: who(ev) + " (" + cmdline(p) + ") streams a tar archive out of " + where(ev) + " under the runtime exec path.",
			Attrs:       map[string]string{"condition": "runtime_exec_tar", "cmdline": cmdline(p)},
		})
	case event.KindOpen:
		f := ev.File
		if f == nil || f.Result < 0 || f.IsWrite() || f.Flags&event.ODirectry != 0 {
			return
		}
		rec, ok := a.procs.Peek(p.PID)
		if !ok || rec.p == nil || !isKubectlCp(ctx.Settings, rec.p, ev.Container) {
			return
		}
		if !a.isModelFile(f, f.Size) {
			return
		}
		ctx.Emit(ev, Report{
			Key:         "read:" + itoa(uint64(p.PID)),
			Severity:    event.SevHigh,
			Explanation: who(ev) + " (" + cmdline(p) + ") under the runtime exec path read model file " + f.Path + " in " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "runtime_exec_tar_model", "path": f.Path},
		})
	}
}

// modelPatterns are the argv fragments of model discovery (EXF-006).
var modelPatterns = []string{".safetensors", ".gguf", ".ggml", ".pt", ".pth", ".ckpt", ".onnx", ".engine", ".plan",
	".nemo", ".llamafile"}

// searchesModels reports whether argv of a search tool names model files.
func searchesModels(p *event.Process) bool {
	b := argv0Base(p)
	switch b {
	case "find", "locate", "mlocate", "plocate", "fd", "fdfind", "du":
	case "grep", "egrep", "rg":
		if b == "grep" || b == "egrep" {
			if !hasArg(p.Args, "-r", "-R", "--recursive") && !argContains(p.Args, "-r") {
				return false
			}
		}
	default:
		return false
	}
	for i := 1; i < len(p.Args); i++ {
		x := p.Args[i]
		if strings.Contains(x, "models--") {
			return true
		}
		for _, m := range modelPatterns {
			if strings.HasSuffix(x, m) || strings.Contains(x, "*"+m) {
				return true
			}
		}
	}
	return false
}

type exf006 struct{ baseRule }

func newEXF006(*Settings) Rule {
	return &exf006{baseRule{Meta{
		ID:       "EXF-006",
		Title:    "Model discovery and AI-host recon",
		MITRE:    []string{"AML.T0007", "AML.T0089", "T1083", "T1613"},
		Severity: event.SevLow,
		Description: "In a container (GPU agents excepted): find/locate/fd/du/grep -r/rg naming model extensions " +
			"or models--; a non-owner reading model.safetensors.index.json, config.pbtxt or Ollama manifests; " +
			"opens of /proc/sched_debug, /sys/kernel/debug/sched/debug or /proc/driver/nvidia/gpus/*/information; " +
			"or a sweep of /proc/<pid>/cmdline over 20 processes within 5 s from an inference container. Medium " +
			"when the container already holds model-weight taint.",
		Knobs: []string{"gpu_agent_allowlist", "inference_selector"},
		Kinds: kinds(event.KindExec, event.KindOpen),
	}}}
}

func (r *exf006) Eval(ctx *Context, ev *event.Event) {
	if !inContainer(ev) || ev.Process == nil {
		return
	}
	a := ctx.eng.ai
	p := ev.Process
	severity := func() event.Severity {
		if a.containerTaint(ev.Container.ID, ctx.Now) != nil {
			return event.SevMedium
		}
		return 0
	}
	switch ev.Kind {
	case event.KindExec:
		if !searchesModels(p) || ctx.Settings.IsGPUAgent(p, ev.Container) {
			return
		}
		ctx.Emit(ev, Report{
			Key:         "search:" + argv0Base(p),
			Severity:    severity(),
			Explanation: who(ev) + " searched for model files (" + cmdline(p) + ") in " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "model_search", "cmdline": cmdline(p)},
		})
	case event.KindOpen:
		f := ev.File
		if f == nil || f.IsWrite() {
			return
		}
		path := f.Path
		cond := ""
		switch {
		case path == "/proc/sched_debug" || path == "/sys/kernel/debug/sched/debug":
			cond = "sched_debug"
		case strings.HasPrefix(path, "/proc/driver/nvidia/gpus/") && strings.HasSuffix(path, "/information"):
			cond = "nvidia_gpu_info"
		case in(baseName(path), "model.safetensors.index.json", "config.pbtxt") ||
			strings.Contains(path, "/.ollama/models/manifests/") || strings.Contains(path, "/ollama/models/manifests/"):
			if p.GPUOwner || ctx.State.IsGPUOwner(p.PID) || f.Result < 0 {
				return
			}
			cond = "model_metadata"
		default:
			a.sweep(ctx, ev)
			return
		}
		if ctx.Settings.IsGPUAgent(p, ev.Container) {
			return
		}
		ctx.Emit(ev, Report{
			Key:         cond + ":" + path,
			Severity:    severity(),
			Explanation: who(ev) + " read " + path + " (" + cond + ") in " + where(ev) + ".",
			Attrs:       map[string]string{"condition": cond, "path": path},
		})
	}
}

// sweep counts /proc/<pid>/cmdline reads per container and reports a sweep.
func (a *aiState) sweep(ctx *Context, ev *event.Event) {
	pid, rest, ok := procPath(ev.File.Path)
	if !ok || rest != "cmdline" || !isDigits(pid) || !a.isInference(ctx.State, ev.Container) ||
		ctx.Settings.IsGPUAgent(ev.Process, ev.Container) {
		return
	}
	n := atoiPID(pid)
	cs := a.ctr(ev.Container)
	if cs.sweepStart.IsZero() || ctx.Now.Sub(cs.sweepStart) > sweepWindow {
		cs.sweepStart, cs.sweepN = ctx.Now, 0
	}
	for i := 0; i < cs.sweepN; i++ {
		if cs.sweepPIDs[i] == n {
			return
		}
	}
	if cs.sweepN >= sweepPIDs {
		return
	}
	cs.sweepPIDs[cs.sweepN] = n
	cs.sweepN++
	if cs.sweepN < sweepPIDs {
		return
	}
	ctx.Emit(ev, Report{
		Key:         "sweep",
		Explanation: who(ev) + " read the command lines of " + itoa(sweepPIDs) + " processes within " + sweepWindow.String() + " in " + where(ev) + " (process sweep).",
		Attrs:       map[string]string{"condition": "cmdline_sweep"},
	})
}
