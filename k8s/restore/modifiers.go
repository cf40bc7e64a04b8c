package restore

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cairn-backup/cairn/k8s/layout"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ModifierUse is what one resource-modifier rule did in a restore.
type ModifierUse struct {
	Rule    string `json:"rule"`    // "rule <index> (<groupResource>)"
	Matched int    `json:"matched"` // objects that met its conditions
	Applied int    `json:"applied"` // objects its patches changed
}

// modify runs the resource modifiers (RestoreOptions.Modifiers) on an
// item after its transforms and reports whether it is still restored: a
// patch that fails fails the item (Velero would restore it unpatched,
// which is not what the rule's author asked for). The rules see the
// object as Velero's do: in its backed-up namespace (rules name the
// backup's namespaces) and without the restore's labels, after the
// storage-class and image mappings; the namespace mapping and the labels
// are put back afterwards, so a patch cannot move an object into another
// namespace.
func (rs *restorer) modify(it *restoreItem) bool {
	mods := rs.opts.Modifiers
	if mods == nil {
		return true
	}
	obj := it.obj
	mappedNS, mappedName := obj.GetNamespace(), obj.GetName()
	if it.m.Namespace != "" {
		obj.SetNamespace(it.m.Namespace)
	}
	if it.gr == grNamespace {
		obj.SetName(it.m.Name)
	}
	hideRestoreLabels(obj)
	out, err := mods.Apply(obj, it.gr)
	if it.m.Namespace != "" {
		obj.SetNamespace(mappedNS)
	}
	if it.gr == grNamespace {
		obj.SetName(mappedName)
	}
	addRestoreLabels(obj, rs.res.Backup, rs.res.Name)

	uses := rs.modifierUses()
	for _, i := range out.Matched {
		uses[i].Matched++
	}
	for _, i := range out.Applied {
		uses[i].Applied++
	}
	if err != nil {
		r := it.result
		r.Namespace, r.Action, r.Reason = mappedNS, ActionFailed, err.Error()
		if mappedNS != it.m.Namespace {
			r.SourceNamespace = it.m.Namespace
		}
		rs.record(r, true)
		return false
	}
	if len(out.Applied) > 0 {
		n := make([]string, len(out.Applied))
		for i, a := range out.Applied {
			n[i] = strconv.Itoa(a)
		}
		it.result.Reason = fmt.Sprintf("changed by resource modifier %s %s", map[bool]string{true: "rule", false: "rules"}[len(n) == 1], strings.Join(n, ", "))
	}
	return true
}

// hideRestoreLabels removes the labels transformForRestore added.
func hideRestoreLabels(obj *unstructured.Unstructured) {
	l := obj.GetLabels()
	delete(l, layout.LabelBackupName)
	delete(l, layout.LabelRestoreName)
	if len(l) == 0 {
		unstructured.RemoveNestedField(obj.Object, "metadata", "labels")
		return
	}
	obj.SetLabels(l)
}

// modifierUses returns the result's per-rule counts, made on first use.
func (rs *restorer) modifierUses() []ModifierUse {
	mods := rs.opts.Modifiers
	if mods == nil {
		return nil
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.res.Modifiers == nil {
		rs.res.Modifiers = make([]ModifierUse, mods.Len())
		for i := range rs.res.Modifiers {
			rs.res.Modifiers[i].Rule = mods.Describe(i)
		}
	}
	return rs.res.Modifiers
}

// warnUnusedModifiers warns about rules no restored object met: a
// groupResource in the wrong group ("persistentvolumeclaims.storage.k8s.io"
// for claims) or a namespace under its mapped name.
func (rs *restorer) warnUnusedModifiers() {
	for _, u := range rs.modifierUses() {
		if u.Matched == 0 {
			rs.warn("resource modifier %s matched no restored object (groupResource is <resource>.<group>, core resources without a group; namespaces are the backup's)", u.Rule)
		}
	}
}
