package gpu

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Resolver returns what the process table knows of a host PID: the process
// and its container (nil for a host process). Either may be nil when the PID
// is unknown. cmd/sensor passes the enricher's lookup.
type Resolver func(pid uint32) (*event.Process, *event.Container)

// WriteTable prints the ownership table of snap for `sensor gpus`: one row per
// GPU (or MIG instance) and owning process, GPU -> pid -> exe -> container ->
// memory. A device without owners gets one row with "-". resolve may be nil.
//
// Every string from the observed system (exe, container and pod names, and
// the driver's) goes through event.EscapeText: an exe path can hold a
// newline, a tab, an ANSI sequence or a 0xff byte (tabwriter's escape), and
// must neither forge a row nor drive the terminal.
func WriteTable(w io.Writer, snap Snapshot, resolve Resolver) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "# %s\n", event.EscapeText(snap.State))
	fmt.Fprintln(tw, "GPU\tUUID\tPID\tEXE\tCONTAINER\tPOD\tUSED\tSM")
	for _, d := range snap.Devices {
		if d.MIGEnabled && d.MIG == "" && len(d.Owners) == 0 {
			// Its processes are on its MIG instances' rows.
			continue
		}
		gpu := fmt.Sprint(d.Index)
		uuid := event.EscapeText(d.UUID)
		if d.MIG != "" {
			gpu += "/mig"
			uuid = event.EscapeText(d.MIG)
		}
		if len(d.Owners) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\n", gpu, uuid)
			continue
		}
		for _, o := range d.Owners {
			exe, ctr, pod := "?", "-", "-"
			if resolve != nil {
				p, c := resolve(o.PID)
				if p != nil && p.Exe != "" {
					exe = event.EscapeText(p.Exe)
				}
				if c != nil {
					ctr = event.EscapeText(shortID(c.ID))
					if c.Name != "" {
						ctr = event.EscapeText(c.Name) + " (" + ctr + ")"
					}
					if c.Pod != "" {
						pod = event.EscapeText(c.Namespace + "/" + c.Pod)
					}
				}
			}
			sm := "-"
			if o.HasUtil {
				sm = fmt.Sprintf("%d%%", o.SMUtil)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", gpu, uuid, o.PID, exe, ctr, pod, humanBytes(o.UsedBytes), sm)
		}
	}
	return tw.Flush()
}

// Inventory turns snap into the GPU part of the runtime bill of materials:
// every device and its owners, with the process and container that resolve
// gives (model files and peers are the detect stage's to add).
func Inventory(snap Snapshot, resolve Resolver) []event.InventoryGPU {
	out := make([]event.InventoryGPU, 0, len(snap.Devices))
	for _, d := range snap.Devices {
		g := event.InventoryGPU{UUID: d.UUID, Index: d.Index, Name: d.Name, MIG: d.MIG}
		for _, o := range d.Owners {
			var p *event.Process
			var c *event.Container
			if resolve != nil {
				p, c = resolve(o.PID)
			}
			if p == nil {
				p = &event.Process{PID: o.PID, Comm: event.Unknown}
			}
			g.Owners = append(g.Owners, event.InventoryOwner{Process: p, Container: c, UsedBytes: o.UsedBytes})
		}
		out = append(out, g)
	}
	return out
}

func shortID(id string) string {
	if len(id) > 12 && !strings.Contains(id, "/") {
		return id[:12]
	}
	return id
}

func humanBytes(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%dMiB", b>>20)
	case b == 0:
		return "0"
	}
	return fmt.Sprintf("%dB", b)
}
