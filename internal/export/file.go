package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// FileOptions are the optional settings of a FileExporter; nil is valid.
type FileOptions struct {
	// Filters select what is written; empty writes everything.
	Filters Filters
	// OCSF configures the encoder in the ocsf format.
	OCSF *OCSFOptions
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// FileStats are a FileExporter's counters.
type FileStats struct {
	Written   uint64 // lines written
	Skipped   uint64 // events with no OCSF class (ocsf format)
	Filtered  uint64 // events the filters excluded
	Lost      uint64 // events that fell out of the ring before being written
	Errors    uint64 // encode or write failures (each event counted once)
	Rotations uint64
	Bytes     int64 // size of the live file
}

// FileExporter writes events as JSON lines, in the native --tail -o json
// format or as OCSF, to a file rotated by size: path, path.1 (newest) ..
// path.<keep> (oldest).
//
// It is safe for concurrent use.
type FileExporter struct {
	cfg   config.FileExport
	ocsf  *OCSFEncoder
	match *Matcher
	log   *slog.Logger

	mu    sync.Mutex
	f     *os.File
	stats FileStats
	buf   []byte // the OCSF line being written
	// pend holds lines that Run wrote and the file has not been given
	// yet (pendLines of them): one write per batch, not one per event.
	pend      []byte
	pendLines uint64
}

// fileFlushBytes is how much Run gathers before it writes to the file; it
// writes what it has whenever it finds the ring drained.
const fileFlushBytes = 64 << 10

// NewFileExporter opens (or creates) cfg.Path for appending.
func NewFileExporter(cfg config.FileExport, opts *FileOptions) (*FileExporter, error) {
	if opts == nil {
		opts = &FileOptions{}
	}
	if cfg.Path == "" {
		return nil, errors.New("create file exporter: export.file.path is empty")
	}
	if err := (&cfg).Validate(); err != nil {
		return nil, fmt.Errorf("create file exporter: %w", err)
	}
	m, err := Compile(opts.Filters)
	if err != nil {
		return nil, fmt.Errorf("create file exporter: filter %w", err)
	}
	x := &FileExporter{cfg: cfg, match: m, log: opts.Logger}
	if x.log == nil {
		x.log = slog.Default()
	}
	if cfg.Format == config.FormatOCSF {
		x.ocsf = NewOCSFEncoder(opts.OCSF)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o750); err != nil {
		return nil, fmt.Errorf("create export directory: %w", err)
	}
	if err := x.open(); err != nil {
		return nil, err
	}
	return x, nil
}

func (x *FileExporter) open() error {
	f, err := os.OpenFile(x.cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open export file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat export file: %w", err)
	}
	x.f, x.stats.Bytes = f, fi.Size()
	return nil
}

// IsHeartbeat reports whether ev is the daemon's heartbeat status event
// (export.status_interval). The native JSON file carries it like any event;
// an OCSF file does not (OCSF has no class for it, and every line of that
// file is OCSF); OTLP sends it in the native JSON whatever the body.
func IsHeartbeat(ev *event.Event) bool {
	return ev.Kind == event.KindStatus && ev.Status != nil && ev.Status.Fields[event.FieldHeartbeat] != ""
}

// encodeLocked renders one line (with its newline) into x.buf, which it
// reuses, or reports why not.
func (x *FileExporter) encodeLocked(ev *event.Event) ([]byte, error) {
	if x.ocsf != nil {
		b, err := x.ocsf.AppendEncode(x.buf[:0], ev)
		if err != nil {
			return nil, err
		}
		x.buf = append(b, '\n')
		return x.buf, nil
	}

	b, err := ev.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Write filters, encodes and appends ev, rotating first when the line would
// take the file past max_bytes. Events without an OCSF class are counted as
// skipped in the ocsf format and are not an error. The line is in the file
// when Write returns.
func (x *FileExporter) Write(ev *event.Event) error {
	return x.write(ev, true)
}

// write is Write; without flush the line may wait in pend for the next
// write that flushes (Run's batches).
func (x *FileExporter) write(ev *event.Event, flush bool) error {
	if ev == nil {
		return nil
	}
	if !x.match.Match(ev) {
		x.mu.Lock()
		x.stats.Filtered++
		x.mu.Unlock()
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	line, err := x.encodeLocked(ev)
	if errors.Is(err, ErrNoOCSFClass) {
		x.stats.Skipped++
		return nil
	}
	if err != nil {
		x.stats.Errors++
		return fmt.Errorf("encode event %d: %w", ev.Seq, err)
	}
	if x.f == nil {
		x.stats.Errors++
		return errors.New("write export file: exporter is closed")
	}
	if size := x.stats.Bytes + int64(len(x.pend)); size > 0 && size+int64(len(line)) > x.cfg.MaxBytes {
		if err := x.flushLocked(); err != nil {
			return err
		}
		if err := x.rotateLocked(); err != nil {
			x.stats.Errors++
			return err
		}
	}
	x.pend = append(x.pend, line...)
	x.pendLines++
	if flush || len(x.pend) >= fileFlushBytes {
		return x.flushLocked()
	}
	return nil
}

// flushLocked writes the pending lines to the file.
func (x *FileExporter) flushLocked() error {
	if len(x.pend) == 0 {
		return nil
	}
	lines := x.pendLines
	x.pendLines = 0
	defer func() { x.pend = x.pend[:0] }()
	if x.f == nil {
		x.stats.Errors += lines
		return errors.New("write export file: exporter is closed")
	}
	n, err := x.f.Write(x.pend)
	x.stats.Bytes += int64(n)
	if err != nil {
		x.stats.Errors += lines
		return fmt.Errorf("write export file: %w", err)
	}
	x.stats.Written += lines
	return nil
}

// flush writes the pending lines to the file.
func (x *FileExporter) flush() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.flushLocked()
}

// rotateLocked shifts path.i to path.i+1 (dropping the oldest), moves the
// live file to path.1 and opens a fresh one.
func (x *FileExporter) rotateLocked() error {
	if err := x.f.Close(); err != nil {
		x.log.Warn("close export file before rotation", "err", err)
	}
	x.f = nil
	p := x.cfg.Path
	for i := x.cfg.Keep - 1; i >= 1; i-- {
		from, to := p+"."+strconv.Itoa(i), p+"."+strconv.Itoa(i+1)
		if err := os.Rename(from, to); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate %s: %w", from, err)
		}
	}
	if err := os.Rename(p, p+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rotate %s: %w", p, err)
	}
	x.stats.Rotations++
	return x.open()
}

// Stats returns a snapshot of the counters.
func (x *FileExporter) Stats() FileStats {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.stats
}

// Close flushes and closes the file. It is safe to call more than once.
func (x *FileExporter) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.f == nil {
		return nil
	}
	ferr := x.flushLocked()
	err := x.f.Close()
	x.f = nil
	if err != nil {
		return fmt.Errorf("close export file: %w", err)
	}
	return ferr
}

// Run follows ring from its next event until ctx is done, writing every
// event; events it falls too far behind to read are counted in Lost and, in
// the json format, written as a {"kind":"lost","source":"subscriber"} line.
// Write errors are logged (once per second at most) and counted; Run only
// returns when ctx ends.
func (x *FileExporter) Run(ctx context.Context, ring *Ring) error {
	w := ring.NewWaiter()
	defer w.Close()
	next := ring.Head() + 1
	buf := make([]*event.Event, batchSize)
	var lastLog time.Time
	for {
		n, gap := ring.Read(next, buf)
		if gap.Skipped > 0 {
			next += gap.Skipped
			x.mu.Lock()
			x.stats.Lost += gap.Lost
			x.mu.Unlock()
			if x.ocsf == nil {
				x.Write(gapEvent(gap))
			}
		}
		for i := 0; i < n; i++ {
			ev := buf[i]
			buf[i] = nil
			next = ev.Seq + 1
			if err := x.write(ev, false); err != nil && time.Since(lastLog) > time.Second {
				lastLog = time.Now()
				x.log.Warn("file exporter could not write an event", "path", x.cfg.Path, "err", err)
			}
		}
		if n > 0 || gap.Skipped > 0 {
			continue
		}
		// The ring is drained: what is pending goes to the file now.
		if err := x.flush(); err != nil && time.Since(lastLog) > time.Second {
			lastLog = time.Now()
			x.log.Warn("file exporter could not write", "path", x.cfg.Path, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.C:
		}
	}
}
