package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/export"
)

// runBOM asks the running daemon for the runtime AI bill of materials and
// prints it as a tree (or JSON with -o json).
func runBOM(ctx context.Context, cfg *config.Config, o *options, stdout io.Writer) error {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := export.Dial(dctx, cfg.Export.UnixSocket)
	if err != nil {
		return fmt.Errorf("no sensor daemon answers on %s (start it with `sensor`, or pass --socket): %w",
			cfg.Export.UnixSocket, err)
	}
	defer c.Close()
	inv, err := c.Inventory(dctx)
	if err != nil {
		return fmt.Errorf("get inventory: %w", err)
	}
	if o.output == "json" {
		return writeJSONDoc(stdout, bomJSON(inv), "  ")
	}
	writeBOM(stdout, inv)
	return nil
}

// writeJSONDoc writes v as one JSON document and a newline, indented by
// indent (none when ""), terminal-safe: names from the observed system can
// hold C1 controls and bidi overrides, which encoding/json leaves raw.
func writeJSONDoc(w io.Writer, v any, indent string) error {
	var b []byte
	var err error
	if indent == "" {
		b, err = json.Marshal(v)
	} else {
		b, err = json.MarshalIndent(v, "", indent)
	}
	if err != nil {
		return err
	}
	_, err = w.Write(append(event.TerminalSafeJSON(b), '\n'))
	return err
}

func writeBOM(w io.Writer, inv *event.Inventory) {
	fmt.Fprintf(w, "node %s  (%s)\n", event.EscapeText(inv.Node), inv.Time.Local().Format(time.RFC3339))
	if len(inv.GPUs) == 0 {
		fmt.Fprintln(w, "└─ no GPU known (NVML disabled or no device)")
	}
	for gi, g := range inv.GPUs {
		last := gi == len(inv.GPUs)-1 && len(inv.Unowned) == 0
		name := fmt.Sprintf("GPU %d %s %s", g.Index, event.EscapeText(g.UUID), event.EscapeText(g.Name))
		if g.MIG != "" {
			name += " MIG " + event.EscapeText(g.MIG)
		}
		fmt.Fprintf(w, "%s %s\n", branch(last), name)
		writeOwners(w, indent(last), g.Owners)
	}
	if len(inv.Unowned) > 0 {
		fmt.Fprintf(w, "└─ model files loaded by processes that own no GPU\n")
		writeOwners(w, "   ", inv.Unowned)
	}
}

func writeOwners(w io.Writer, pre string, owners []event.InventoryOwner) {
	if len(owners) == 0 {
		fmt.Fprintf(w, "%s└─ (no owner)\n", pre)
	}
	for i, ow := range owners {
		last := i == len(owners)-1
		fmt.Fprintf(w, "%s%s %s  %s  %s\n", pre, branch(last), ownerName(ow.Process), where(ow.Container), humanBytes(ow.UsedBytes))
		p2 := pre + indent(last)
		n := len(ow.Models) + len(ow.Peers)
		k := 0
		for _, m := range ow.Models {
			k++
			sum := m.SHA256
			if sum == "" {
				sum = "sha256 pending"
			} else {
				sum = "sha256:" + sum
			}
			fmt.Fprintf(w, "%s%s model %s  %s  %s\n", p2, branch(k == n), event.EscapeText(m.Path), humanBytes(uint64(max(m.Size, 0))), event.EscapeText(sum))
		}
		for _, pe := range ow.Peers {
			k++
			fmt.Fprintf(w, "%s%s egress %s %s %s  %s\n", p2, branch(k == n), event.EscapeText(pe.Protocol), hostPort(pe.Addr.String(), pe.Port), event.EscapeText(pe.Class), humanBytes(pe.BytesSent))
		}
	}
}

func ownerName(p *event.Process) string {
	if p == nil {
		return "?"
	}
	s := fmt.Sprintf("pid %d %s", p.PID, orDash(event.EscapeText(p.Exe)))
	if len(p.Args) > 1 {
		s += " " + quoteArgs(p.Args[1:])
	}
	return s
}

func branch(last bool) string {
	if last {
		return "└─"
	}
	return "├─"
}

func indent(last bool) string {
	if last {
		return "   "
	}
	return "│  "
}

// bomJSON is the JSON form of the inventory, with the same field names as the
// event contract.
func bomJSON(inv *event.Inventory) any {
	type model struct {
		Path   string `json:"path"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	}
	type peer struct {
		Addr      string `json:"addr"`
		Port      uint16 `json:"port"`
		Protocol  string `json:"protocol"`
		Class     string `json:"class"`
		BytesSent uint64 `json:"bytes_sent"`
	}
	type owner struct {
		Process   any     `json:"process"`
		Container any     `json:"container"`
		UsedBytes uint64  `json:"used_bytes"`
		Models    []model `json:"models"`
		Peers     []peer  `json:"peers"`
	}
	type gpuJ struct {
		UUID   string  `json:"uuid"`
		Index  int     `json:"index"`
		Name   string  `json:"name"`
		MIG    string  `json:"mig,omitempty"`
		Owners []owner `json:"owners"`
	}
	conv := func(os []event.InventoryOwner) []owner {
		out := []owner{}
		for _, o := range os {
			p, c := event.ContextJSON(o.Process, o.Container)
			ow := owner{Process: p, Container: c, UsedBytes: o.UsedBytes, Models: []model{}, Peers: []peer{}}
			for _, m := range o.Models {
				ow.Models = append(ow.Models, model{m.Path, m.Size, m.SHA256})
			}
			for _, p := range o.Peers {
				ow.Peers = append(ow.Peers, peer{p.Addr.String(), p.Port, p.Protocol, p.Class, p.BytesSent})
			}
			sort.Slice(ow.Models, func(i, j int) bool { return strings.Compare(ow.Models[i].Path, ow.Models[j].Path) < 0 })
			out = append(out, ow)
		}
		return out
	}
	gs := []gpuJ{}
	for _, g := range inv.GPUs {
		gs = append(gs, gpuJ{g.UUID, g.Index, g.Name, g.MIG, conv(g.Owners)})
	}
	return map[string]any{"node": inv.Node, "time": inv.Time.UTC().Format(event.TimeFormat), "gpus": gs, "unowned": conv(inv.Unowned)}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
