// Package testutil holds helpers shared by cairn's tests: locating and
// running the real restic program (for interoperability tests), generating
// deterministic test trees, and comparing two trees entry by entry.
//
// It is imported only from _test.go files, e.g.
//
//	import "github.com/cairn-backup/cairn/tests/testutil"
//
//	src := t.TempDir()
//	testutil.GenTree(t, src, testutil.DefaultGenOptions(1))
//	... back up src, restore it to dst ...
//	testutil.CompareTrees(t, src, dst, testutil.CompareOptions{})
package testutil
