package repo

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/crypto"
)

// pb describes one blob of a synthetic pack: its name, type and length.
type pb struct {
	name string
	typ  BlobType
	len  uint32
}

func d(name string, n uint32) pb  { return pb{name, DataBlob, n} }
func tr(name string, n uint32) pb { return pb{name, TreeBlob, n} }

func nameID(s string) ID { return Hash([]byte(s)) }

// fakeRepo builds index entries and pack files with consistent sizes.
type fakeRepo struct {
	in PruneInput
}

func newFake() *fakeRepo {
	return &fakeRepo{in: PruneInput{PackFiles: map[ID]int64{}, Used: map[BlobHandle]struct{}{}}}
}

// pack adds an indexed pack; it returns the pack's ID.
func (f *fakeRepo) pack(name string, blobs ...pb) ID {
	id := nameID("pack " + name)
	size := int64(crypto.Extension + 4)
	var off uint32
	for _, b := range blobs {
		e := PackedBlob{BlobHandle: BlobHandle{ID: nameID(b.name), Type: b.typ}, Pack: id, Offset: off, Length: b.len}
		f.in.Blobs = append(f.in.Blobs, e)
		off += b.len
		size += entrySize(e)
	}
	f.in.PackFiles[id] = size
	return id
}

func (f *fakeRepo) use(names ...string) {
	for _, n := range names {
		for _, b := range f.in.Blobs {
			if b.ID == nameID(n) {
				f.in.Used[b.BlobHandle] = struct{}{}
			}
		}
	}
}

func (f *fakeRepo) useMissing(name string) {
	f.in.Used[BlobHandle{ID: nameID(name), Type: DataBlob}] = struct{}{}
}

func packNames(ids []ID) []string {
	byID := map[ID]string{}
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "x"} {
		byID[nameID("pack "+n)] = n
	}
	var out []string
	for _, id := range ids {
		out = append(out, byID[id])
	}
	slices.Sort(out)
	return out
}

func unlimited() UnusedLimit { return UnusedLimit{Unlimited: true} }
func zero() UnusedLimit      { return UnusedLimit{} }

func TestPlanPrune(t *testing.T) {
	type want struct {
		keep, repack, remove, unindexed, damaged, missing []string
		copies                                            int
		err                                               string
	}
	tests := []struct {
		name  string
		build func(f *fakeRepo)
		opts  PruneOptions
		want  want
	}{
		{"all used, nothing used, unindexed", func(f *fakeRepo) {
			f.pack("a", d("1", 100), d("2", 100))
			f.pack("b", d("3", 100))
			f.in.PackFiles[nameID("pack x")] = 1234
			f.use("1", "2")
		}, PruneOptions{MaxUnused: zero(), MaxRepackSize: -1},
			want{keep: []string{"a"}, remove: []string{"b"}, unindexed: []string{"x"}}},
		{"partly used, no unused allowed", func(f *fakeRepo) {
			f.pack("a", d("1", 100), d("2", 100), d("3", 100))
			f.use("1", "3")
		}, PruneOptions{MaxUnused: zero(), MaxRepackSize: -1},
			want{repack: []string{"a"}, copies: 2}},
		{"partly used, unlimited unused", func(f *fakeRepo) {
			f.pack("a", d("1", 100), d("2", 100), d("3", 100))
			f.use("1", "3")
		}, PruneOptions{MaxUnused: unlimited(), MaxRepackSize: -1},
			want{keep: []string{"a"}}},
		// 10% unused overall; a 5% limit repacks the most wasteful pack first
		// (c: half unused), which brings it below the limit.
		{"percentage, most wasteful first", func(f *fakeRepo) {
			f.pack("a", d("a1", 1000), d("a2", 1000), d("a3", 1000), d("a4", 1000), d("a5", 100))
			f.pack("b", d("b1", 1000), d("b2", 1000), d("b3", 1000), d("b4", 1000), d("b5", 100))
			f.pack("c", d("c1", 400), d("c2", 400))
			f.use("a1", "a2", "a3", "a4", "b1", "b2", "b3", "b4", "c1")
		}, PruneOptions{MaxUnused: UnusedLimit{IsPercent: true, Percent: 5}, MaxRepackSize: -1},
			want{keep: []string{"a", "b"}, repack: []string{"c"}, copies: 1}},
		{"repack budget", func(f *fakeRepo) {
			f.pack("a", d("1", 1000), d("2", 1000))
			f.pack("b", d("3", 100), d("4", 100))
			f.use("1", "3")
		}, PruneOptions{MaxUnused: zero(), MaxRepackSize: 500},
			want{keep: []string{"a"}, repack: []string{"b"}, copies: 1}},
		// Blob 2 is in two full packs: the copy in the pack with more used
		// bytes is kept, the other pack is then partly unused.
		{"duplicate in two packs", func(f *fakeRepo) {
			f.pack("a", d("1", 200), d("2", 100))
			f.pack("b", d("2", 100), d("3", 100))
			f.use("1", "2", "3")
		}, PruneOptions{MaxUnused: zero(), MaxRepackSize: -1},
			want{keep: []string{"a"}, repack: []string{"b"}, copies: 1}},
		{"duplicate kept when allowed", func(f *fakeRepo) {
			f.pack("a", d("1", 100), d("2", 100))
			f.pack("b", d("2", 100), d("3", 100))
			f.use("1", "2", "3")
		}, PruneOptions{MaxUnused: unlimited(), MaxRepackSize: -1},
			want{keep: []string{"a", "b"}}},
		{"mixed pack is always repacked", func(f *fakeRepo) {
			f.pack("a", d("1", 100), tr("t", 100))
			f.use("1", "t")
		}, PruneOptions{MaxUnused: unlimited(), MaxRepackSize: -1},
			want{repack: []string{"a"}, copies: 2}},
		{"small packs with --repack-small", func(f *fakeRepo) {
			f.pack("a", d("1", 100))
			f.pack("b", d("2", 100))
			f.pack("c", tr("t", 100))
			f.use("1", "2", "t")
		}, PruneOptions{MaxUnused: unlimited(), MaxRepackSize: -1, RepackSmall: true, PackSize: 1 << 20},
			want{repack: []string{"a", "b", "c"}, copies: 3}},
		{"one small pack stays", func(f *fakeRepo) {
			f.pack("a", d("1", 100))
			f.use("1")
		}, PruneOptions{MaxUnused: unlimited(), MaxRepackSize: -1, RepackSmall: true, PackSize: 1 << 20},
			want{keep: []string{"a"}}},
		{"missing pack, needed blob elsewhere", func(f *fakeRepo) {
			f.pack("a", d("1", 100))
			m := f.pack("b", d("1", 100), d("2", 100))
			delete(f.in.PackFiles, m)
			f.use("1")
		}, PruneOptions{MaxUnused: zero(), MaxRepackSize: -1},
			want{keep: []string{"a"}, missing: []string{"b"}}},
		{"damaged pack, needed blob elsewhere", func(f *fakeRepo) {
			f.pack("a", d("1", 100))
			m := f.pack("b", d("1", 100))
			f.in.PackFiles[m] -= 10
			f.use("1")
		}, PruneOptions{MaxUnused: zero(), MaxRepackSize: -1},
			want{keep: []string{"a"}, damaged: []string{"b"}}},
		{"needed blob only in a missing pack", func(f *fakeRepo) {
			m := f.pack("a", d("1", 100))
			delete(f.in.PackFiles, m)
			f.use("1")
		}, PruneOptions{MaxUnused: zero(), MaxRepackSize: -1},
			want{err: "only in missing or damaged packs"}},
		{"needed blob only in a damaged pack", func(f *fakeRepo) {
			m := f.pack("a", d("1", 100))
			f.in.PackFiles[m] += 1
			f.use("1")
		}, PruneOptions{MaxUnused: zero(), MaxRepackSize: -1},
			want{err: "only in missing or damaged packs"}},
		{"needed blob in no index", func(f *fakeRepo) {
			f.pack("a", d("1", 100))
			f.useMissing("nowhere")
		}, PruneOptions{MaxUnused: zero(), MaxRepackSize: -1},
			want{err: "in no index"}},
		// A pack named by two index files: its entries appear twice.
		{"pack listed twice", func(f *fakeRepo) {
			f.pack("a", d("1", 100), d("2", 100))
			f.in.Blobs = append(f.in.Blobs, f.in.Blobs...)
			f.use("1", "2")
		}, PruneOptions{MaxUnused: zero(), MaxRepackSize: -1},
			want{keep: []string{"a"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			tc.build(f)
			plan, err := PlanPrune(f.in, tc.opts)
			if tc.want.err != "" {
				if err == nil || !errors.Is(err, ErrPruneUnsafe) || !strings.Contains(err.Error(), tc.want.err) || !strings.Contains(err.Error(), "nothing was deleted") {
					t.Fatalf("err = %v, want ErrPruneUnsafe with %q", err, tc.want.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				what      string
				got, want []string
			}{
				{"keep", packNames(plan.Keep), tc.want.keep},
				{"repack", packNames(plan.Repack), tc.want.repack},
				{"remove", packNames(plan.Remove), tc.want.remove},
				{"unindexed", packNames(plan.Unindexed), tc.want.unindexed},
				{"damaged", packNames(plan.Damaged), tc.want.damaged},
				{"missing", packNames(plan.Missing), tc.want.missing},
			} {
				if !slices.Equal(c.got, c.want) {
					t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
				}
			}
			if len(plan.Copy) != tc.want.copies {
				t.Errorf("copies %d, want %d", len(plan.Copy), tc.want.copies)
			}
			checkPlanCovers(t, f, plan)
		})
	}
}

// checkPlanCovers asserts the safety property: every used blob is either in
// a kept pack or copied, and nothing is copied twice.
func checkPlanCovers(t *testing.T, f *fakeRepo, plan *PrunePlan) {
	t.Helper()
	have := map[BlobHandle]int{}
	for _, b := range plan.KeepBlobs {
		have[b.BlobHandle]++
	}
	copied := map[BlobHandle]bool{}
	for _, b := range plan.Copy {
		if copied[b.BlobHandle] {
			t.Errorf("%v copied twice", b.BlobHandle)
		}
		copied[b.BlobHandle] = true
		if !slices.Contains(plan.Repack, b.Pack) {
			t.Errorf("%v copied from pack %v, which is not repacked", b.BlobHandle, b.Pack.Str())
		}
	}
	for h := range f.in.Used {
		if have[h] == 0 && !copied[h] {
			t.Errorf("used %v would be lost", h)
		}
	}
	seen := map[ID]bool{}
	for _, l := range [][]ID{plan.Keep, plan.Repack, plan.Remove, plan.Unindexed, plan.Damaged, plan.Missing} {
		for _, id := range l {
			if seen[id] {
				t.Errorf("pack %v in two lists", id.Str())
			}
			seen[id] = true
		}
	}
}

func TestPlanPruneStats(t *testing.T) {
	f := newFake()
	f.pack("a", d("1", 1000), d("2", 1000))
	f.pack("b", d("3", 500))
	f.pack("c", d("4", 300), d("1", 1000))
	f.use("1", "4")
	plan, err := PlanPrune(f.in, PruneOptions{MaxUnused: zero(), MaxRepackSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	st := plan.Stats
	e := func(n int64) int64 { return n + headerEntrySize }
	if st.Packs != 3 || st.Blobs != 5 || st.UsedBlobs != 2 || st.UnusedBlobs != 3 || st.DuplicateBlobs != 1 {
		t.Errorf("counts: %+v", st)
	}
	// Pack c holds 1 and 4 and is all used, so 1's copy there is the one
	// kept; a (1 duplicate, 2 unused) has nothing used: removed.
	if st.UsedSize != e(1000)+e(300) || st.UnusedSize != e(1000)+e(1000)+e(500) {
		t.Errorf("sizes: used %d, unused %d", st.UsedSize, st.UnusedSize)
	}
	if st.KeepPacks != 1 || st.RemovePacks != 2 || st.RepackPacks != 0 || st.UnusedAfter != 0 {
		t.Errorf("plan: %+v", st)
	}
	var total int64
	for _, s := range f.in.PackFiles {
		total += s
	}
	if st.TotalSize != total || st.RemoveSize != f.in.PackFiles[nameID("pack a")]+f.in.PackFiles[nameID("pack b")] {
		t.Errorf("total %d (want %d), remove %d", st.TotalSize, total, st.RemoveSize)
	}
}

func TestParseUnusedLimitAndSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		used int64
		max  int64
		err  bool
	}{
		{"5%", 950, 50, false},
		{"0%", 1000, 0, false},
		{"50%", 1000, 1000, false},
		{"100%", 1, 1<<63 - 1, false},
		{"unlimited", 1, 1<<63 - 1, false},
		{"0", 1000, 0, false},
		{"10k", 0, 10 << 10, false},
		{"1.5M", 0, 3 << 19, false},
		{"2GiB", 0, 2 << 30, false},
		{"101%", 0, 0, true},
		{"-1%", 0, 0, true},
		{"lots", 0, 0, true},
		{"-5M", 0, 0, true},
	} {
		l, err := ParseUnusedLimit(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("ParseUnusedLimit(%q): %v", tc.in, err)
			continue
		}
		if err == nil && l.Max(tc.used) != tc.max {
			t.Errorf("ParseUnusedLimit(%q).Max(%d) = %d, want %d", tc.in, tc.used, l.Max(tc.used), tc.max)
		}
	}
	for in, want := range map[string]int64{"0": 0, "512": 512, "1k": 1024, "3T": 3 << 40, "100mb": 100 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := ParseSize("x1"); err == nil {
		t.Error("ParseSize(x1) succeeded")
	}
}
