package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/export"
	"github.com/kestrel-sec/kestrel/internal/pipeline"
)

// printer renders events to the terminal in one of the three formats. It is
// safe for concurrent use: the in-process pipeline and the gRPC client call
// it from their own goroutines.
type printer struct {
	mu    sync.Mutex
	w     *bufio.Writer
	human *humanRenderer
	ocsf  *export.OCSFEncoder
	buf   []byte // the OCSF line being written
	// diag takes, in the ocsf format, what OCSF has no class for (status,
	// lost and gpu lines): stdout stays OCSF only, and the reader still
	// learns what the view misses.
	diag  io.Writer
	match *export.Matcher
	err   error
}

func newPrinter(out, diag io.Writer, format string, noColor bool, match *export.Matcher) *printer {
	isTTY := false
	if f, ok := out.(*os.File); ok {
		isTTY = term.IsTerminal(int(f.Fd()))
	}
	if format == "" {
		format = "json"
		if isTTY {
			format = "text"
		}
	}
	p := &printer{w: bufio.NewWriterSize(out, 64<<10), diag: diag, match: match}
	switch format {
	case "text":
		p.human = newHumanRenderer(p.w, isTTY && !noColor && os.Getenv("NO_COLOR") == "")
	case "ocsf":
		// In process, the events are this process's: this node, this
		// build, no ring (so no metadata.uid).
		p.ocsf = export.NewOCSFEncoder(&export.OCSFOptions{Hostname: nodeName(), ProductVersion: version})
	}
	return p
}

// attached gives OCSF lines the daemon's identity, the one its file
// exporter writes: its node name, version and ring instance, so an event
// has the same metadata.uid in both.
func (p *printer) attached(node, daemonVersion, instance string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ocsf != nil {
		p.ocsf = export.NewOCSFEncoder(&export.OCSFOptions{Hostname: node, ProductVersion: daemonVersion, InstanceID: instance})
	}
}

// print renders ev if the filters let it through. Status lines are always
// shown (and the filters always pass lost lines): they tell the reader what
// the view is missing.
func (p *printer) print(ev *event.Event) {
	if ev.Kind != event.KindStatus && p.match != nil && !p.match.Match(ev) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var err error
	switch {
	case p.human != nil:
		err = p.human.Render(ev)
	case p.ocsf != nil:
		var b []byte
		b, err = p.ocsf.AppendEncode(p.buf[:0], ev)
		if errors.Is(err, export.ErrNoOCSFClass) {
			err = writeDiagLine(p.diag, ev)
			break
		}
		if err == nil {
			p.buf = append(b, '\n')
			_, err = p.w.Write(p.buf)
		}
	default:
		err = writeJSONLine(p.w, ev)
	}
	if err == nil {
		err = p.w.Flush()
	}
	if err != nil && p.err == nil {
		p.err = err
	}
}

// writeDiagLine writes the native JSON line of an event OCSF has no class
// for.
func writeDiagLine(w io.Writer, ev *event.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func writeJSONLine(w *bufio.Writer, ev *event.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	w.Write(b)
	return w.WriteByte('\n')
}

// filtersFromFlags turns the --tail flags into the API's one filter type.
func filtersFromFlags(f *filterFlags) (export.Filters, error) {
	var fl export.Filter
	for _, k := range f.kinds {
		kind, ok := event.ParseKind(k)
		if !ok {
			return export.Filters{}, usageError{fmt.Errorf("--kind %q: not an event kind", k)}
		}
		fl.Kinds = append(fl.Kinds, kind)
	}
	if f.severity != "" {
		s, ok := event.ParseSeverity(f.severity)
		if !ok {
			return export.Filters{}, usageError{fmt.Errorf("--severity %q: want info, low, medium, high or critical", f.severity)}
		}
		fl.MinSeverity = s
	}
	fl.Rules = f.rules
	fl.Container, fl.Pod, fl.Namespace, fl.Binary = f.container, f.pod, f.namespace, f.binary
	if f.gpu != "" {
		fl.GPUs = []string{f.gpu}
	}
	fl.HostOnly = f.hostOnly
	// Forks are the process table's bookkeeping: the exec that follows
	// carries the lineage. Show them only when asked for.
	deny := []export.Filter{{Kinds: []event.Kind{event.KindFork}}}
	if len(fl.Kinds) > 0 {
		deny = nil
	}
	ex, err := excludesFromFlags(&f.exclude)
	if err != nil {
		return export.Filters{}, err
	}
	deny = append(deny, ex...)
	if !f.active() {
		return export.Filters{Deny: deny}, nil
	}
	return export.Filters{Allow: []export.Filter{fl}, Deny: deny}, nil
}

// excludesFromFlags turns each --exclude-* value into a deny filter of its
// own, so that an event is hidden when it matches any of them.
func excludesFromFlags(e *excludeFlags) ([]export.Filter, error) {
	var deny []export.Filter
	for _, k := range e.kinds {
		kind, ok := event.ParseKind(k)
		if !ok {
			return nil, usageError{fmt.Errorf("--exclude-kind %q: not an event kind", k)}
		}
		deny = append(deny, export.Filter{Kinds: []event.Kind{kind}})
	}
	for _, r := range e.rules {
		if r == "" {
			return nil, usageError{errors.New("--exclude-rule: empty rule id")}
		}
		deny = append(deny, export.Filter{Rules: []string{r}})
	}
	for _, x := range []struct {
		flag string
		res  regexFlag
		set  func(*export.Filter, string)
	}{
		{"--exclude-container", e.containers, func(f *export.Filter, re string) { f.Container = re }},
		{"--exclude-pod", e.pods, func(f *export.Filter, re string) { f.Pod = re }},
		{"--exclude-namespace", e.namespaces, func(f *export.Filter, re string) { f.Namespace = re }},
		{"--exclude-binary", e.bins, func(f *export.Filter, re string) { f.Binary = re }},
	} {
		for _, re := range x.res {
			var f export.Filter
			x.set(&f, re)
			// Compile names the API field; name the flag the user typed.
			if re == "" {
				return nil, usageError{fmt.Errorf("%s: empty regex", x.flag)}
			}
			if _, err := export.Compile(export.Filters{Deny: []export.Filter{f}}); err != nil {
				_, msg, _ := strings.Cut(err.Error(), ": ")
				return nil, usageError{fmt.Errorf("%s %q: %s", x.flag, re, msg)}
			}
			deny = append(deny, f)
		}
	}
	return deny, nil
}

// runTail is the on-call view: attach to the daemon when one runs, else run
// the pipeline in this process.
func runTail(ctx context.Context, cfg *config.Config, o *options, stdout, stderr io.Writer, log *slog.Logger) error {
	filters, err := filtersFromFlags(&o.filter)
	if err != nil {
		return err
	}
	match, err := export.Compile(filters)
	if err != nil {
		return usageError{err}
	}
	pr := newPrinter(stdout, stderr, o.output, o.noColor, match)

	if !o.inProcess {
		if _, err := os.Stat(cfg.Export.UnixSocket); err == nil {
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			c, err := export.Dial(dctx, cfg.Export.UnixSocket)
			var (
				st  *event.Status
				cur *export.Cursor
			)
			if err == nil {
				st, cur, err = daemonStatus(dctx, c)
			}
			cancel()
			if err == nil {
				defer c.Close()
				log.Debug("attached to the running daemon", "socket", cfg.Export.UnixSocket)
				st.Ready = true
				pr.attached(st.Fields["node"], st.Fields["version"], cur.Instance)
				pr.print(&event.Event{Kind: event.KindStatus, Time: time.Now(), Status: st})
				// Resume right after the head the status line reported: no
				// event falls between the line and the stream.
				err := c.SubscribeWith(ctx, filters, cur, pr.print, &export.SubscribeOptions{StopOnDisconnect: true})
				if errors.Is(err, context.Canceled) {
					return pr.err
				}
				return daemonGone(pr, cfg.Export.UnixSocket, err)
			}
			log.Info("no daemon answers on the socket; running in-process", "socket", cfg.Export.UnixSocket, "err", err)
		}
	}

	st, err := newStack(ctx, cfg, log, []pipeline.Sink{pr.print})
	if err != nil {
		return err
	}
	defer st.Close()
	pr.print(st.readyEvent())
	err = st.Run(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if err == nil {
		err = pr.err
	}
	return err
}

// daemonGone tells the reader, in the stream itself, that the attached
// daemon went away or refused the feed, and returns the error that makes
// --tail exit non-zero: silence would read as a quiet node.
func daemonGone(pr *printer, socket string, err error) error {
	var msg string
	switch {
	case errors.Is(err, export.ErrRefused):
		msg = "the daemon refused the feed"
	case errors.Is(err, export.ErrDisconnected):
		msg = "the daemon went away"
	default:
		msg = "the feed from the daemon failed"
	}
	pr.print(&event.Event{Kind: event.KindStatus, Time: time.Now(), Status: &event.Status{
		Message: msg + " (" + err.Error() + "); nothing after this line was seen",
		Fields:  map[string]string{"mode": "attached to daemon", "socket": socket}}})
	return fmt.Errorf("%s at %s: %w", msg, socket, err)
}

// daemonStatus returns the daemon's status and a cursor at its ring's head.
func daemonStatus(ctx context.Context, c *export.Client) (*event.Status, *export.Cursor, error) {
	resp, err := c.Status(ctx)
	if err != nil {
		return nil, nil, err
	}
	st := &event.Status{Fields: map[string]string{"nvml": resp.GetNvmlState(), "node": resp.GetNodeName(),
		"instance": resp.GetInstanceId(), "version": resp.GetStatus().GetFields()["version"], "mode": "attached to daemon",
		event.FieldSelfCheck: resp.GetStatus().GetFields()[event.FieldSelfCheck]}}
	if s := resp.GetStatus(); s != nil {
		st.Programs = s.GetPrograms()
		st.Counters = s.GetCounters()
	}
	st.Message = "attached to the daemon; GPU: " + resp.GetNvmlState() +
		selfCheckNote(resp.GetStatus().GetFields()[event.FieldSelfCheck])
	return st, &export.Cursor{Instance: resp.GetInstanceId(), Seq: resp.GetRing().GetHeadSeq()}, nil
}
