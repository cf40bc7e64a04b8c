package main

import (
	"time"

	"github.com/cairn-backup/cairn/k8s/backup"
	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/podvolumes"
	"github.com/cairn-backup/cairn/k8s/volumes"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/retention"
	"github.com/spf13/cobra"
)

// volumeFlags are cluster backup's pod volume flags.
type volumeFlags struct {
	enabled        bool
	defaultToFS    bool
	timeout        time.Duration
	agentNamespace string
}

func (v *volumeFlags) addFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.BoolVar(&v.enabled, "backup-volumes", true, "copy the pod volume data the annotations (or --default-volumes-to-fs-backup) select (=false: manifests only)")
	// Velero's flag name, so that scripts move over unchanged.
	fs.BoolVar(&v.defaultToFS, "default-volumes-to-fs-backup", false, "copy every pod volume that can be, except those a pod's backup.cairn.io/backup-volumes-excludes names (opt-out)")
	fs.DurationVar(&v.timeout, "volume-timeout", podvolumes.DefaultTimeout, "wait this long for the node agents to copy the volumes; those not done by then fail")
	fs.StringVar(&v.agentNamespace, "agent-namespace", defaultAgentNamespace, "the `namespace` the node agents watch for volume items")
}

// hook is the VolumeHook of a backup called name into r.
func (v *volumeFlags) hook(cl *kube.Clients, r *repo.Repository, name string, ttl time.Duration) backup.VolumeHook {
	var tags []string
	if ttl > 0 {
		// The backup's own expiry is counted from its start, a moment
		// earlier: the volumes expire with it, give or take a second.
		tags = append(tags, retention.ExpiryTag(time.Now().Add(ttl)))
	}
	return podvolumes.Hook(podvolumes.Options{Tags: tags,
		Dyn: cl.Dynamic, Namespace: v.agentNamespace, Repo: r, Location: r.Backend().Location(),
		Backup: name, Select: volumes.Options{DefaultToFSBackup: v.defaultToFS}, Timeout: v.timeout,
	})
}
