package layout

// A maintenance record keeps what one run of `cairn cluster maintenance
// run` did (what it forgot and why, what prune freed), as a snapshot of
// its own, like a restore record:
//
//	/maintenance.json   the run's result (maintenance.Record)
//	/maintenance.log    a readable log
//
// Its hostname is the cluster it ran for and its path
// MaintenanceRecordPath(cluster). It never carries TagBackup, TagVolumeOf
// or an expiry tag; maintenance keeps the newest records and forgets the
// older ones itself.
const (
	MaintenanceInfoFile = "maintenance.json"
	MaintenanceLogFile  = "maintenance.log"

	TagMaintenanceRecord = "cairn-maintenance" // on every maintenance record
	TagMaintenance       = "maintenance="      // tag prefix naming the run
)

// MaintenanceRecordPath is the path recorded in a maintenance record of
// cluster (not a file system path).
func MaintenanceRecordPath(cluster string) string { return "k8s-maintenance://" + cluster }
