package layout

// A restore record keeps what a cluster restore did, in the repository,
// as a snapshot of its own:
//
//	/restore.json   the restore's result (restorelog.Record)
//	/restore.log    a readable log
//
// Its hostname is the cluster restored into and its path
// RestoreRecordPath(cluster): never a backup's path, so that forget's
// default grouping (host, paths) keeps records and backups apart. It never
// carries TagBackup, TagVolumeOf or an expiry tag: no backup listing,
// volume parent choice or `forget --expired` picks it up.
const (
	RestoreInfoFile = "restore.json"
	RestoreLogFile  = "restore.log"

	TagRestoreRecord = "cairn-restore" // on every restore record
	TagRestore       = "restore="      // tag prefix naming the restore
	TagRestoreOf     = "restore-of="   // tag prefix naming the backup it restored
)

// RestoreRecordPath is the path recorded in the restore record of a
// restore into cluster (not a file system path).
func RestoreRecordPath(cluster string) string { return "k8s-restore://" + cluster }
