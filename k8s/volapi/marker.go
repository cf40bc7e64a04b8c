package volapi

// The restore handshake between a restored pod and the agent: the
// restore gives every restored pod with volume data an init container
// named RestoreWaitContainer that mounts those volumes under
// RestoreWaitRoot/<volume> and waits until each holds DoneMarker(restore);
// the agent writes that file at the volume's root after the data.
const (
	RestoreWaitContainer = "cairn-restore-wait"
	RestoreWaitRoot      = "/cairn-restore"
	doneMarkerPrefix     = ".cairn-restore-"
)

// DoneMarker is the name of the file the agent writes at the root of a
// volume once restore has put its data back (VolumeRestoreSpec.DoneMarker).
// restore names a restore: a label value, so the name is a safe file name.
func DoneMarker(restore string) string { return doneMarkerPrefix + restore }
