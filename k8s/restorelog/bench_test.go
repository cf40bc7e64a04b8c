package restorelog

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/restore"
)

// BenchmarkSaveRecord saves the record of a restore of 10,000 objects:
// what a large restore adds to its own run.
func BenchmarkSaveRecord(b *testing.B) {
	ctx := context.Background()
	r, _ := testRepo(b)
	rec := testRecord("big", "b", time.Now())
	rec.Items = nil
	for i := range 10000 {
		rec.Items = append(rec.Items, restore.ItemResult{Resource: "configmaps", Namespace: fmt.Sprintf("ns-%d", i%50), Name: fmt.Sprintf("cm-%d", i), Action: restore.ActionCreated})
	}
	tr := &Tracker{}
	on := tr.Wrap(nil)
	for _, it := range rec.Items {
		on(it)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Save(ctx, r, rec, tr); err != nil {
			b.Fatal(err)
		}
	}
	js, _ := json.MarshalIndent(rec, "", "  ")
	b.ReportMetric(float64(len(js)), "json-bytes")
	b.ReportMetric(float64(len(Log(rec, tr))), "log-bytes")
}
