package install

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The RBAC design: two ServiceAccounts, so that the agent, which runs on
// every node with the host's volumes mounted, holds only what its loop
// calls (k8s/agent), and the broad rights of backup and restore sit with a
// ServiceAccount nothing runs as until a user runs `cairn cluster backup`
// or `restore` in the cluster (a CronJob with serviceAccountName: cairn).
//
//   - cairn-agent: its node's items and their status; the pods of its node
//     and their claims, read only.
//   - cairn (backup): read every resource (a backup copies them all,
//     Secrets included); create VolumeBackups in the install namespace and
//     drop a rerun's old ones (k8s/podvolumes); exec into pods for backup
//     hooks.
//   - cairn (restore): create, update and patch any resource (a backup may
//     hold any kind; k8s/restore creates, updates existing objects, patches
//     managedFields back, writes status and ephemeral containers) and
//     escalate/bind roles (a restored Role may grant what cairn does not
//     hold). No delete anywhere: restore never deletes, so a mistaken
//     restore cannot remove what is there. Creating any pod with any
//     ServiceAccount makes this role as strong as cluster-admin in
//     practice; that is what restoring a cluster means.

func rule(groups, resources, verbs []string) map[string]any {
	return map[string]any{"apiGroups": anys(groups), "resources": anys(resources), "verbs": anys(verbs)}
}

func anys(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

var (
	readOnly = []string{"get", "list", "watch"}
	cairnAPI = []string{"cairn.io"}
	core     = []string{""}
)

// agentRules are namespaced: the agent's items live in the install
// namespace only.
func agentRules() []any {
	return []any{
		rule(cairnAPI, []string{"volumebackups", "volumerestores"}, readOnly),
		// Taking a VolumeRestore sets spec.node and its label
		// (resourceVersion-guarded update, k8s/agent/restore.go).
		rule(cairnAPI, []string{"volumerestores"}, []string{"update"}),
		// Claims, heartbeats, progress and results.
		rule(cairnAPI, []string{"volumebackups/status", "volumerestores/status"}, []string{"update", "patch"}),
	}
}

// agentClusterRules: restores look at the pods scheduled on the agent's
// node (RBAC cannot narrow a field selector) and the claims of restored
// pods, whose bound volume names the directory. Read only.
func agentClusterRules() []any {
	return []any{
		rule(core, []string{"pods"}, readOnly),
		rule(core, []string{"persistentvolumeclaims"}, []string{"get"}),
	}
}

func backupClusterRules() []any {
	return []any{
		rule([]string{"*"}, []string{"*"}, readOnly),
		// Backup hooks run commands in the pods being backed up.
		rule(core, []string{"pods/exec"}, []string{"create"}),
	}
}

// backupRules are namespaced: the items for the agents.
func backupRules() []any {
	return []any{
		// One item per volume; a rerun of a backup name first drops the
		// items the earlier run left (DeleteCollection by label).
		rule(cairnAPI, []string{"volumebackups"}, []string{"create", "deletecollection"}),
	}
}

func restoreClusterRules() []any {
	return []any{
		// "*" covers subresources: status, pods/ephemeralcontainers,
		// pods/exec for restore hooks.
		rule([]string{"*"}, []string{"*"}, []string{"create", "update", "patch"}),
		rule([]string{"rbac.authorization.k8s.io"}, []string{"roles", "clusterroles"}, []string{"escalate", "bind"}),
	}
}

// rbac returns ServiceAccounts, roles and bindings in apply order.
func rbac(ns string) []*unstructured.Unstructured {
	const rbacV1 = "rbac.authorization.k8s.io/v1"
	subject := func(sa string) []any {
		return []any{map[string]any{"kind": "ServiceAccount", "name": sa, "namespace": ns}}
	}
	roleRef := func(kind, name string) map[string]any {
		return map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}
	}
	binding := func(kind, namespace, name, role, sa string) *unstructured.Unstructured {
		return obj(rbacV1, kind, namespace, name, map[string]any{"roleRef": roleRef(kind[:len(kind)-len("Binding")], role), "subjects": subject(sa)})
	}
	return []*unstructured.Unstructured{
		obj("v1", "ServiceAccount", ns, AgentName, nil),
		obj("v1", "ServiceAccount", ns, ServerName, nil),
		obj(rbacV1, "ClusterRole", "", AgentName, map[string]any{"rules": agentClusterRules()}),
		obj(rbacV1, "ClusterRole", "", BackupRoleName, map[string]any{"rules": backupClusterRules()}),
		obj(rbacV1, "ClusterRole", "", RestoreRoleName, map[string]any{"rules": restoreClusterRules()}),
		obj(rbacV1, "Role", ns, AgentName, map[string]any{"rules": agentRules()}),
		obj(rbacV1, "Role", ns, BackupRoleName, map[string]any{"rules": backupRules()}),
		binding("ClusterRoleBinding", "", AgentName, AgentName, AgentName),
		binding("ClusterRoleBinding", "", BackupRoleName, BackupRoleName, ServerName),
		binding("ClusterRoleBinding", "", RestoreRoleName, RestoreRoleName, ServerName),
		binding("RoleBinding", ns, AgentName, AgentName, AgentName),
		binding("RoleBinding", ns, BackupRoleName, BackupRoleName, ServerName),
	}
}
