package podvolumes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/tests/testutil"
	"golang.org/x/sys/unix"
)

// The agents' restore half, end to end: two pods on two nodes with three
// volumes (a claim, a RWX claim both mount, an emptyDir) are backed up and
// restored into a mapped namespace. The test plays scheduler, provisioner
// and kubelet: it binds the new pods, binds their new claims and, only
// after the agents have taken the items and wait, lays out the volume
// directories. The agents fill them byte-identical (modes, owners, times,
// an xattr), write the done marker, and `cairn cluster restore-wait` on
// those directories exits 0.
func TestAgentRestoresVolumes(t *testing.T) {
	e := newEnv(t, "rdata")
	pvData, pvShared := e.claim("data", "ReadWriteOnce"), e.claim("shared", "ReadWriteMany")
	dbUID := e.pod("db", "node-a", map[string]string{"backup.cairn.io/backup-volumes": "data,shared"},
		claimVol("data", "data"), claimVol("shared", "shared"))
	webUID := e.pod("web", "node-b", map[string]string{"backup.cairn.io/backup-volumes": "shared,cache"},
		claimVol("shared", "shared"), emptyDirVol("cache"))
	src := map[string]string{"data": e.csiDir(dbUID, pvData), "shared": e.csiDir(dbUID, pvShared), "cache": e.emptyDir(webUID, "cache")}
	testutil.GenTree(t, src["data"], genOpts(21))
	testutil.GenTree(t, src["shared"], genOpts(22))
	testutil.GenTree(t, src["cache"], genOpts(23))
	xattrFile := owners(t, src["data"])
	owners(t, src["cache"])

	e.agent("node-a", "--mount-wait", "3m")
	e.agent("node-b", "--mount-wait", "3m")
	if b := e.backup("b1", 0); b.Phase != "Completed" {
		t.Fatalf("backup phase %s", b.Phase)
	}

	copyNS := e.appNS + "-copy"
	e.restoreInto("b1", "r1", copyNS)
	uid := map[string]string{"db": e.schedule(copyNS, "db", "node-a"), "web": e.schedule(copyNS, "web", "node-b")}

	// The agents take the items of their nodes' pods and wait: no claim
	// is bound, no directory made yet.
	var items map[string]*volapi.VolumeRestore
	e.waitFor(time.Minute, "the items assigned and waiting", func() bool {
		items = e.restores("r1")
		for _, vr := range items {
			if vr.Status.Phase != volapi.PhaseInProgress || !strings.Contains(vr.Status.Message, "waiting for the volume") {
				return false
			}
		}
		return len(items) == 3
	})
	nodeOf := map[string]string{"db": "node-a", "web": "node-b"}
	sharedPod := ""
	for k, vr := range items {
		if vr.Spec.Node != nodeOf[vr.Spec.Pod.Name] || vr.Labels[volapi.LabelNode] != nodeOf[vr.Spec.Pod.Name] {
			t.Errorf("%s: node %q, label %q", k, vr.Spec.Node, vr.Labels[volapi.LabelNode])
		}
		if vr.Spec.Volume == "shared" {
			sharedPod = vr.Spec.Pod.Name
		}
	}
	t.Logf("waiting item: %s", items["db/data"].Status.Message)

	newPV := map[string]string{"data": e.provision(copyNS, "data"), "shared": e.provision(copyNS, "shared")}
	dst := map[string]string{
		"data":   e.csiDir(uid["db"], newPV["data"]),
		"shared": e.csiDir(uid[sharedPod], newPV["shared"]),
		"cache":  e.emptyDir(uid["web"], "cache"),
	}
	for _, d := range dst {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	items = e.waitRestored("r1", 3)
	for k, vr := range items {
		st := vr.Status
		if st.Phase != volapi.PhaseCompleted || st.Files == 0 || st.Bytes == 0 || st.Errors != 0 || st.Attempts != 1 {
			t.Errorf("%s: status %+v", k, st)
		}
	}
	for v, d := range dst {
		if _, err := os.Lstat(filepath.Join(d, ".cairn-restore-r1")); err != nil {
			t.Errorf("%s: no done marker: %v", v, err)
		}
		if n := testutil.CompareTrees(t, src[v], d, testutil.CompareOptions{IgnoreRootMeta: true, CompareOwner: true, Ignore: isMarker}); n < 60 {
			t.Errorf("%s: only %d entries compared", v, n)
		}
	}
	if xattrFile != "" {
		buf := make([]byte, 64)
		n, err := unix.Lgetxattr(filepath.Join(dst["data"], xattrFile), "user.cairn-test", buf)
		if err != nil || string(buf[:n]) != "restored" {
			t.Errorf("xattr of %s: %q %v", xattrFile, buf[:max(n, 0)], err)
		}
	}

	// The init containers' command, on the volumes as the pods mount them
	// (both pods see the one shared disk).
	e.cairn(0, "cluster", "restore-wait", "--volumes-root", waitRoot(t, map[string]string{"data": dst["data"], "shared": dst["shared"]}),
		"--marker", "r1", "--volumes", "data,shared", "--timeout", "10s")
	e.cairn(0, "cluster", "restore-wait", "--volumes-root", waitRoot(t, map[string]string{"shared": dst["shared"], "cache": dst["cache"]}),
		"--marker", "r1", "--volumes", "shared,cache", "--timeout", "10s")
}
