package main

import (
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/retention"
	"github.com/cairn-backup/cairn/snapshot"
)

// forgetGroupJSON is one group of `forget --json`, shaped like restic's.
type forgetGroupJSON struct {
	Tags    []string         `json:"tags"`
	Host    string           `json:"host"`
	Paths   []string         `json:"paths"`
	Keep    []snapshotJSON   `json:"keep"`
	Remove  []snapshotJSON   `json:"remove"`
	Reasons []keepReasonJSON `json:"reasons"`
}

type keepReasonJSON struct {
	Snapshot snapshotJSON   `json:"snapshot"`
	Matches  []string       `json:"matches"`
	Counters map[string]int `json:"counters"`
}

func forgetJSONGroups(groups []retention.GroupResult, byID map[string]*snapshot.Snapshot) []forgetGroupJSON {
	conv := func(sns []retention.Snapshot) []snapshotJSON {
		var out []snapshotJSON
		for _, sn := range sns {
			out = append(out, newSnapshotJSON(byID[sn.ID]))
		}
		return out
	}
	out := []forgetGroupJSON{}
	for _, gr := range groups {
		gj := forgetGroupJSON{Tags: gr.Key.Tags, Host: gr.Key.Hostname, Paths: gr.Key.Paths, Keep: conv(gr.Keep), Remove: conv(gr.Remove)}
		for _, kr := range gr.Reasons {
			gj.Reasons = append(gj.Reasons, keepReasonJSON{Snapshot: newSnapshotJSON(byID[kr.Snapshot.ID]), Matches: kr.Matches, Counters: kr.Counters})
		}
		out = append(out, gj)
	}
	return out
}

// printForgetGroups prints, per group, the kept snapshots with the reasons
// and the removed ones, oldest first, as restic does.
func printForgetGroups(g *globalOptions, groups []retention.GroupResult, byID map[string]*snapshot.Snapshot, byArgs bool) {
	for i, gr := range groups {
		if i > 0 {
			g.printf("\n")
		}
		if k := gr.Key.String(); k != "" {
			g.printf("snapshots for %s:\n", k)
		}
		if !byArgs {
			reasons := map[string][]string{}
			for _, kr := range gr.Reasons {
				reasons[kr.Snapshot.ID] = kr.Matches
			}
			g.printf("keep %s:\n", plural(len(gr.Keep), "snapshot"))
			printForgetTable(g, gr.Keep, byID, "Reasons", reasons)
		}
		if len(gr.Remove) == 0 {
			continue
		}
		expired := map[string][]string{}
		for _, sn := range gr.Expired {
			t, _ := retention.ParseExpiry(sn.Tags)
			expired[sn.ID] = []string{"expired " + t.Local().Format("2006-01-02 15:04:05")}
		}
		col := ""
		if len(expired) > 0 {
			col = "Reasons"
		}
		g.printf("remove %s:\n", plural(len(gr.Remove), "snapshot"))
		printForgetTable(g, gr.Remove, byID, col, expired)
	}
}

// printForgetTable prints snapshots oldest first; with col set, a column of
// that name lists notes[id], one per line.
func printForgetTable(g *globalOptions, sns []retention.Snapshot, byID map[string]*snapshot.Snapshot, col string, notes map[string][]string) {
	if g.quiet || g.json || len(sns) == 0 {
		return
	}
	header := []string{"ID", "Time", "Host", "Tags", "Paths"}
	if col != "" {
		header = []string{"ID", "Time", "Host", "Tags", col, "Paths"}
	}
	var rows [][]string
	for _, rsn := range slices.Backward(sns) {
		sn := byID[rsn.ID]
		lines := max(len(sn.Paths), 1)
		if col != "" {
			lines = max(lines, len(notes[rsn.ID]))
		}
		for l := range lines {
			row := make([]string, len(header))
			if l == 0 {
				copy(row, []string{sn.ID.Str(), sn.Time.Local().Format("2006-01-02 15:04:05"), sn.Hostname, strings.Join(sn.Tags, ",")})
			}
			if col != "" && l < len(notes[rsn.ID]) {
				row[4] = notes[rsn.ID][l]
			}
			if l < len(sn.Paths) {
				row[len(row)-1] = sn.Paths[l]
			}
			rows = append(rows, row)
		}
	}
	printTable(g, header, rows)
}
