// Command sensor is the Kestrel eBPF host sensor for GPU inference nodes.
//
//	sensor                 run the daemon: capture, enrich, detect, serve gRPC
//	sensor --tail          live view: attach to the local daemon, or run in-process
//	sensor gpus            print which process owns which GPU
//	sensor bom             print the runtime AI bill of materials
//
// Exit codes: 0 ok, 1 runtime failure, 2 bad flags or config.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
)

const usageText = `Kestrel: eBPF host sensor for GPU inference nodes.

Usage:
  sensor [flags]                 run the daemon (capture, detect, serve gRPC)
  sensor --tail [flags]          live view of this node: attaches to the running daemon's
                                 socket, or runs the pipeline in-process when none runs
  sensor gpus [flags]            print GPU -> pid -> exe -> container -> memory
  sensor bom [flags]             print the runtime AI bill of materials (from the daemon)

Flags:
  --config FILE        YAML config (default: built-in defaults; see deploy/sensor.yaml)
  --tail               live view instead of the daemon
  -o, --output FORMAT  text (default on a terminal), json (one object per line), ocsf
  --socket PATH        daemon socket (default from config: export.unix_socket)
  --in-process         with --tail: do not attach to a daemon even if one runs
  --no-color           plain text even on a terminal
  --log-format F       text (default) or json: the sensor's own logs on stderr (config: log_format)
  --metrics-listen A   host:port of the Prometheus /metrics endpoint, "" to turn it off
                       (config: metrics.listen; default 127.0.0.1:2112)
  --health-listen A    host:port of the plain-text gRPC health service for kubelet probes,
                       "" to turn it off (config: export.health_listen)
  --tcp-listen A       host:port of the mutual-TLS gRPC feed, "" to turn it off
                       (config: export.tcp_listen; needs export.tls)
                       In a DaemonSet pass the pod IP, e.g. --health-listen=[$(POD_IP)]:9876:
                       under hostNetwork ":9876" would listen on every interface of the node
  --version            print the version, commit, Go and cilium/ebpf versions, and exit
  -h, --help           this help

Filters (with --tail; repeatable where it makes sense):
  --kind K             only events of kind K (exec, open, connect, egress, gpu, finding, syscall, ...)
  --severity S         only findings of severity S or worse (info, low, medium, high, critical);
                       events other than findings are hidden
  --rule ID            only findings of rule ID (e.g. ESC-002)
  --container RE       container id regex      --pod RE        pod name regex
  --namespace RE       namespace regex         --binary RE     executable path regex
  --gpu UUID           only events about GPU UUID
  --host-only          only host (non-container) processes

Exclude filters (with --tail; repeatable; each hides what it matches, whatever the
filters above select; lost and status lines are always shown):
  --exclude-kind K     hide events of kind K           --exclude-rule ID     hide findings of rule ID
  --exclude-container RE  hide container id/name regex --exclude-pod RE      hide pod name regex
  --exclude-namespace RE  hide namespace regex         --exclude-binary RE   hide executable path regex

Exit codes: 0 ok, 1 runtime failure, 2 bad flags or config.
`

// options are the parsed command line.
type options struct {
	cmd       string // "", "gpus", "bom"
	tail      bool
	output    string
	config    string
	socket    string
	inProcess bool
	noColor   bool
	showVer   bool
	filter    filterFlags
	// logFormat and listen override the config when set.
	logFormat string
	listen    config.ListenFlags
}

type filterFlags struct {
	kinds     multiFlag
	severity  string
	rules     multiFlag
	container string
	pod       string
	namespace string
	binary    string
	gpu       string
	hostOnly  bool
	exclude   excludeFlags
}

// excludeFlags are the --exclude-* flags: each value hides what it matches,
// whatever the other filters select (a deny filter of the API each).
type excludeFlags struct {
	kinds, rules                       multiFlag
	containers, pods, namespaces, bins regexFlag
}

func (e *excludeFlags) active() bool {
	return len(e.kinds) > 0 || len(e.rules) > 0 || len(e.containers) > 0 || len(e.pods) > 0 ||
		len(e.namespaces) > 0 || len(e.bins) > 0
}

// regexFlag is a repeatable flag whose values are kept whole: a regex may
// hold commas ("a{1,3}").
type regexFlag []string

func (r *regexFlag) String() string     { return strings.Join(*r, " ") }
func (r *regexFlag) Set(v string) error { *r = append(*r, v); return nil }

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, strings.Split(v, ",")...); return nil }

// usageError is a bad flag, argument or config: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// configError is a problem of the configuration found while building the
// stages (a rule id the engine does not know, a TLS file that does not load):
// exit code 2, like a bad key, and always before a program is loaded.
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

func parseArgs(args []string) (*options, error) {
	o := &options{}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "gpus", "bom":
			o.cmd = args[0]
			args = args[1:]
		case "help":
			return nil, flag.ErrHelp
		case "version":
			o.showVer = true
			return o, nil
		default:
			return nil, usageError{fmt.Errorf("unknown command %q (want gpus, bom, or flags)", args[0])}
		}
	}
	fs := flag.NewFlagSet("sensor", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.BoolVar(&o.tail, "tail", false, "")
	fs.StringVar(&o.output, "o", "", "")
	fs.StringVar(&o.output, "output", "", "")
	fs.StringVar(&o.config, "config", "", "")
	fs.StringVar(&o.socket, "socket", "", "")
	fs.BoolVar(&o.inProcess, "in-process", false, "")
	fs.BoolVar(&o.noColor, "no-color", false, "")
	fs.BoolVar(&o.showVer, "version", false, "")
	fs.StringVar(&o.logFormat, "log-format", "", "")
	fs.Func("metrics-listen", "", func(v string) error { o.listen.Metrics = &v; return nil })
	fs.Func("health-listen", "", func(v string) error { o.listen.Health = &v; return nil })
	fs.Func("tcp-listen", "", func(v string) error { o.listen.TCP = &v; return nil })
	fs.Var(&o.filter.kinds, "kind", "")
	fs.StringVar(&o.filter.severity, "severity", "", "")
	fs.Var(&o.filter.rules, "rule", "")
	fs.StringVar(&o.filter.container, "container", "", "")
	fs.StringVar(&o.filter.pod, "pod", "", "")
	fs.StringVar(&o.filter.namespace, "namespace", "", "")
	fs.StringVar(&o.filter.binary, "binary", "", "")
	fs.StringVar(&o.filter.gpu, "gpu", "", "")
	fs.BoolVar(&o.filter.hostOnly, "host-only", false, "")
	fs.Var(&o.filter.exclude.kinds, "exclude-kind", "")
	fs.Var(&o.filter.exclude.rules, "exclude-rule", "")
	fs.Var(&o.filter.exclude.containers, "exclude-container", "")
	fs.Var(&o.filter.exclude.pods, "exclude-pod", "")
	fs.Var(&o.filter.exclude.namespaces, "exclude-namespace", "")
	fs.Var(&o.filter.exclude.bins, "exclude-binary", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	switch o.output {
	case "", "text", "json", "ocsf":
	default:
		return nil, usageError{fmt.Errorf("-o %q: want text, json or ocsf", o.output)}
	}
	if o.cmd == "" && !o.tail && (o.output != "" || o.filter.active() || o.filter.exclude.active()) {
		return nil, usageError{errors.New("-o and filters need --tail (or the gpus/bom commands)")}
	}
	if o.inProcess && !o.tail {
		return nil, usageError{errors.New("--in-process needs --tail")}
	}
	if o.logFormat != "" {
		if err := config.ValidateLogFormat(o.logFormat); err != nil {
			return nil, usageError{fmt.Errorf("--log-format: %w", err)}
		}
	}
	return o, nil
}

func (f *filterFlags) active() bool {
	return len(f.kinds) > 0 || f.severity != "" || len(f.rules) > 0 || f.container != "" || f.pod != "" ||
		f.namespace != "" || f.binary != "" || f.gpu != "" || f.hostOnly
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usageText)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sensor: %v (see sensor --help)\n", err)
		return 2
	}
	if o.showVer {
		printVersion(stdout, readBuildInfo())
		return 0
	}
	cfg, err := loadConfig(o)
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "sensor: %v (see sensor --help)\n", err)
		} else {
			fmt.Fprintf(stderr, "sensor: %v\n", err)
		}
		return 2
	}
	level := new(slog.LevelVar)
	setLevel(level, cfg.LogLevel)
	logger := newLogger(stderr, level, cfg.LogFormat)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	daemon := o.cmd == "" && !o.tail
	done := make(chan struct{})
	defer close(done)
	go handleSignals(sigs, done, cancel, logger, daemon, func() { reloadConfig(o, cfg, level, logger) }, shutdownGrace)

	switch {
	case o.cmd == "gpus":
		err = runGPUs(ctx, cfg, o, stdout, logger)
	case o.cmd == "bom":
		err = runBOM(ctx, cfg, o, stdout)
	case o.tail:
		err = runTail(ctx, cfg, o, stdout, stderr, logger)
	default:
		err = runDaemon(ctx, cfg, logger)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "sensor: %v (see sensor --help)\n", err)
			return 2
		}
		fmt.Fprintf(stderr, "sensor: %v\n", err)
		var ce configError
		if errors.As(err, &ce) {
			return 2
		}
		return 1
	}
	return 0
}

// loadConfig reads --config (or the defaults) and applies what the command
// line overrides.
func loadConfig(o *options) (*config.Config, error) {
	cfg := config.Default()
	if o.config != "" {
		var err error
		if cfg, err = config.Load(o.config); err != nil {
			return nil, err
		}
	}
	if o.socket != "" {
		cfg.Export.UnixSocket = o.socket
	}
	watchModelRoots(cfg)
	if o.logFormat != "" {
		cfg.LogFormat = o.logFormat
	}
	if err := cfg.ApplyListenFlags(o.listen); err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

func setLevel(v *slog.LevelVar, level string) {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	v.Set(l)
}

// exit is os.Exit (a test replaces it).
var exit = os.Exit

// shutdownGrace is how long a stop may take after SIGTERM before the
// process exits anyway. Exiting releases every BPF link and program with
// the process's descriptors, so nothing stays attached either way.
var shutdownGrace = 10 * time.Second

// handleSignals turns SIGINT and SIGTERM into a cancellation, and exits the
// process if the stop takes longer than grace or a second signal comes. In
// the daemon SIGHUP reloads the configuration (what can change without a
// restart); elsewhere it stops like SIGTERM (the terminal went away).
func handleSignals(sigs <-chan os.Signal, done <-chan struct{}, cancel context.CancelFunc, log *slog.Logger, daemon bool, reload func(), grace time.Duration) {
	stopping := false
	var deadline <-chan time.Time
	for {
		select {
		case <-done:
			return
		case sig := <-sigs:
			if sig == syscall.SIGHUP && daemon {
				reload()
				continue
			}
			if stopping {
				log.Error("second signal while stopping; exiting now", "signal", sig.String())
				exit(1)
				return
			}
			stopping = true
			log.Info("stopping", "signal", sig.String())
			cancel()
			deadline = time.After(grace)
		case <-deadline:
			log.Error("the sensor did not stop within its grace period after the signal; exiting (the kernel detaches the programs with the process)",
				"grace", grace)
			exit(1)
			return
		}
	}
}

// reloadConfig re-reads the configuration on SIGHUP. The log level applies at
// once (TLS files are re-read on their own when they change); a change to
// anything else needs a restart and is logged as such. A file that no longer
// parses or validates changes nothing.
func reloadConfig(o *options, running *config.Config, level *slog.LevelVar, log *slog.Logger) {
	if o.config == "" {
		log.Info("SIGHUP: no --config file to reload; nothing changed")
		return
	}
	next, err := loadConfig(o)
	if err != nil {
		log.Error("SIGHUP: the configuration does not load; the running one stays", "err", err)
		return
	}
	if next.LogLevel != running.LogLevel {
		setLevel(level, next.LogLevel)
		log.Info("SIGHUP: log level changed", "from", running.LogLevel, "to", next.LogLevel)
		running.LogLevel = next.LogLevel
	}
	var restart []string
	for _, sec := range []struct {
		name string
		a, b any
	}{
		{"capture", running.Capture, next.Capture}, {"context", running.Context, next.Context},
		{"gpu", running.GPU, next.GPU}, {"detect", running.Detect, next.Detect}, {"export", running.Export, next.Export},
	} {
		if !reflect.DeepEqual(sec.a, sec.b) {
			restart = append(restart, sec.name)
		}
	}
	if len(restart) > 0 {
		log.Warn("SIGHUP: these sections changed and take effect only after a restart", "sections", strings.Join(restart, ","))
	} else {
		log.Info("SIGHUP: configuration reloaded", "config", o.config)
	}
}

// watchModelRoots makes the kernel report opens under every configured model
// root: the rules decide what a model is, but only what the in-kernel filter
// lets through can reach them. Glob roots (/home/*/...) cannot be prefixes;
// the suffix table covers their weight files.
func watchModelRoots(cfg *config.Config) {
	have := map[string]bool{}
	for _, p := range cfg.Capture.WatchPrefixes {
		have[p] = true
	}
	for _, r := range cfg.Detect.ModelRoots {
		if r == "" || strings.ContainsAny(r, "*?[") || !strings.HasPrefix(r, "/") {
			continue
		}
		if !strings.HasSuffix(r, "/") {
			r += "/"
		}
		if !have[r] {
			cfg.Capture.WatchPrefixes = append(cfg.Capture.WatchPrefixes, r)
			have[r] = true
		}
	}
}
