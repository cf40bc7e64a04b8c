package match

import "testing"

func TestMatcher(t *testing.T) {
	tests := []struct {
		pats  []string
		path  string
		match bool
		child bool
	}{
		{[]string{"*.go"}, "/src/a/main.go", true, true},
		{[]string{"*.go"}, "/src/a/main.c", false, true},
		{[]string{"/src/a"}, "/src/a/main.c", true, true},
		{[]string{"/src/a"}, "/src/b/main.c", false, false},
		{[]string{"/src/a/*.c"}, "/src", false, true},
		{[]string{"a/main.c"}, "/src/a/main.c", true, true},
		{[]string{"/src/**/x"}, "/src/p/q/x/y", true, true},
		{[]string{"/src/**/x"}, "/src/x", true, true},
		{[]string{"/src/**/x"}, "/other/x", false, false},
		{[]string{"*.log", "!keep.log"}, "/var/keep.log", false, true},
		{[]string{"*.log", "!keep.log"}, "/var/drop.log", true, true},
		{[]string{"cache"}, "/home/u/cache/file", true, true},
		{[]string{"/home/u/ünï"}, "/home/u/ünï/f", true, true},
	}
	for _, tt := range tests {
		m, err := NewMatcher(tt.pats, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Match(tt.path); got != tt.match {
			t.Errorf("%v Match(%q) = %v, want %v", tt.pats, tt.path, got, tt.match)
		}
		if got := m.ChildMayMatch(tt.path); got != tt.child {
			t.Errorf("%v ChildMayMatch(%q) = %v, want %v", tt.pats, tt.path, got, tt.child)
		}
	}
	m, _ := NewMatcher([]string{"*.JPG"}, true)
	if !m.Match("/a/b.jpg") {
		t.Error("case folding")
	}
	if _, err := NewMatcher([]string{"[a"}, false); err == nil {
		t.Error("invalid pattern accepted")
	}
}
