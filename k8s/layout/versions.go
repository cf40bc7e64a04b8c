package layout

import "path"

// Objects of groups that serve several versions are saved at each served
// version, so that a restore can pick one the target serves. The copy at
// the version the backup read them at stays where it always was, under
// /resources (its apiVersion says the version); the others are laid out
// like /resources below one directory per group and version:
//
//	/resource-versions/<group>/<version>/cluster/<resource>.<group>/<name>.yaml
//	/resource-versions/<group>/<version>/namespaces/<ns>/<resource>.<group>/<name>.yaml
//
// (<group> is "core" for the core group, which a custom group cannot be
// called, having no dot.) An object is there only when it is under
// /resources too. BackupInfo.ResourceVersions lists, per resource dir,
// the versions saved here, in the source server's order of preference.
//
// A restore picks, per object: the target's preferred version of the
// group, then the source's (the /resources copy), then any version both
// serve; none served is an error of that object.
const (
	ResourceVersionsDir = "resource-versions"
	CoreGroupDir        = "core" // the core group's directory under ResourceVersionsDir
)

// VersionManifestPath is the slash path of an object's manifest at a
// version other than its /resources copy's; namespace "" means
// cluster-scoped.
func VersionManifestPath(group, version, namespace, resource, name string) string {
	g := group
	if g == "" {
		g = CoreGroupDir
	}
	rel := ManifestPath(namespace, resource, group, name) // "/resources/…"
	return path.Join("/", ResourceVersionsDir, g, version, rel[len("/"+ResourcesDir):])
}
