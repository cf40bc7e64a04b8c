package schedule

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Labels and annotations of a schedule's CronJob (and its Jobs, pods).
const (
	// LabelSchedule names the schedule; list selects CronJobs by it.
	LabelSchedule = "cairn.io/schedule"
	// AnnotationSpec holds the Spec as JSON, for describe.
	AnnotationSpec = "cairn.io/schedule-spec"
	labelPartOf    = "app.kubernetes.io/part-of"
	// MaxNameLen keeps "<name>-<YYYYMMDDhhmmss>" a valid backup name (a
	// DNS label, 63), and with it the CronJob's name (the API allows 52).
	MaxNameLen = 63 - 1 - len(TimestampLayout)
	// TimestampLayout is the suffix of a scheduled backup's name, UTC.
	TimestampLayout = "20060102150405"
)

// Spec is what a schedule was created with, kept in its CronJob's
// annotation so describe shows it (and maintenance can read it).
type Spec struct {
	Schedule   string   `json:"schedule"`           // as the user wrote it
	Cron       string   `json:"cron"`               // spec.schedule
	TimeZone   string   `json:"timeZone,omitempty"` // spec.timeZone
	BackupArgs []string `json:"backupArgs"`         // the backup flags given
	TTL        string   `json:"ttl,omitempty"`
	// Retention is the schedule's forget policy (--keep-…), for the
	// maintenance job; empty until schedules take one.
	Retention map[string]string `json:"retention,omitempty"`
}

// Options build a schedule's CronJob.
type Options struct {
	Name, Namespace string
	Schedule        string // what the user wrote (Translate's input)
	Image           string
	ImagePullPolicy string
	ServiceAccount  string
	Secret          string   // envFrom: CAIRN_REPOSITORY, CAIRN_PASSWORD, AWS_*
	BackupArgs      []string // flags after `cluster backup --schedule-name NAME`
	TTL             string   // "" for the backup's default
	// Retention is the forget policy the maintenance job applies to the
	// schedule's backups (RetentionFlags names → values; nil: none).
	Retention map[string]string
	Paused    bool
	// RepositoryDir is a local repository's directory, mounted from the
	// node at the same path ("" for an object store).
	RepositoryDir string
}

// ValidateName checks a schedule's name: a DNS label short enough for
// the backup names made from it.
func ValidateName(name string) error {
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return fmt.Errorf("%w: name %q: %s", ErrSchedule, name, strings.Join(errs, "; "))
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: name %q is %d characters; at most %d (backup names add -YYYYMMDDhhmmss)", ErrSchedule, name, len(name), MaxNameLen)
	}
	return nil
}

// BackupName is the name of the backup a schedule makes at now.
func BackupName(schedule string, now time.Time) string {
	return schedule + "-" + now.UTC().Format(TimestampLayout)
}

// Args is the container's command line (after the image's entrypoint,
// cairn): the backup takes its name from the schedule when it runs.
func Args(o Options) []string {
	args := []string{"cluster", "backup", "--schedule-name", o.Name}
	if o.TTL != "" {
		args = append(args, "--ttl", o.TTL)
	}
	return append(args, o.BackupArgs...)
}

// CronJob builds the schedule's CronJob: concurrencyPolicy Forbid (a
// backup still running makes the next one wait, never two at once), no
// retries (a failed or partial backup is saved as it is; a retry would
// make a second one), the install's ServiceAccount and Secret.
func CronJob(o Options) (*unstructured.Unstructured, error) {
	if err := ValidateName(o.Name); err != nil {
		return nil, err
	}
	tr, err := Translate(o.Schedule)
	if err != nil {
		return nil, err
	}
	if _, err := RetentionPolicy(o.Retention); err != nil {
		return nil, err
	}
	spec, err := json.Marshal(Spec{Schedule: o.Schedule, Cron: tr.Expr, TimeZone: tr.TimeZone,
		BackupArgs: append([]string{}, o.BackupArgs...), TTL: o.TTL, Retention: o.Retention})
	if err != nil {
		return nil, err
	}
	labels := map[string]any{LabelSchedule: o.Name, labelPartOf: "cairn"}
	return cronJob(o, tr, "backup", labels, map[string]any{AnnotationSpec: string(spec)}, Args(o))
}

// cronJob is the CronJob of a schedule or of maintenance: one container
// of the cairn image running args, with the install's ServiceAccount and
// Secret, a writable /cache and /tmp, and a local repository's directory.
func cronJob(o Options, tr Translated, container string, labels, annotations map[string]any, cmdArgs []string) (*unstructured.Unstructured, error) {
	if o.Image == "" || o.Namespace == "" || o.Secret == "" || o.ServiceAccount == "" {
		return nil, fmt.Errorf("%w: image, namespace, Secret and ServiceAccount are needed", ErrSchedule)
	}
	args := []any{}
	for _, a := range cmdArgs {
		args = append(args, a)
	}
	c := map[string]any{
		"name": container, "image": o.Image, "args": args,
		"envFrom":         []any{map[string]any{"secretRef": map[string]any{"name": o.Secret}}},
		"securityContext": map[string]any{"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false},
		"volumeMounts": []any{
			map[string]any{"name": "cache", "mountPath": "/cache"},
			map[string]any{"name": "tmp", "mountPath": "/tmp"},
		},
	}
	if o.ImagePullPolicy != "" {
		c["imagePullPolicy"] = o.ImagePullPolicy
	}
	vols := []any{
		map[string]any{"name": "cache", "emptyDir": map[string]any{}},
		map[string]any{"name": "tmp", "emptyDir": map[string]any{}},
	}
	if d := o.RepositoryDir; d != "" {
		vols = append(vols, map[string]any{"name": "repository", "hostPath": map[string]any{"path": d, "type": "Directory"}})
		c["volumeMounts"] = append(c["volumeMounts"].([]any), map[string]any{"name": "repository", "mountPath": d})
	}
	cronSpec := map[string]any{
		"schedule":                   tr.Expr,
		"concurrencyPolicy":          "Forbid",
		"suspend":                    o.Paused,
		"successfulJobsHistoryLimit": int64(3),
		"failedJobsHistoryLimit":     int64(3),
		"jobTemplate": map[string]any{
			"metadata": map[string]any{"labels": labels},
			"spec": map[string]any{
				"backoffLimit": int64(0),
				"template": map[string]any{
					"metadata": map[string]any{"labels": labels},
					"spec": map[string]any{
						"serviceAccountName": o.ServiceAccount,
						"restartPolicy":      "Never",
						"containers":         []any{c},
						"volumes":            vols,
					},
				},
			},
		},
	}
	if tr.TimeZone != "" {
		cronSpec["timeZone"] = tr.TimeZone
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "batch/v1", "kind": "CronJob",
		"metadata": map[string]any{
			"name": o.Name, "namespace": o.Namespace, "labels": labels,
			"annotations": annotations,
		},
		"spec": cronSpec,
	}}, nil
}

// JobFrom is a Job made from cj's jobTemplate now, as `kubectl create job
// --from=cronjob/…` makes one: owned by the CronJob (so deleting it
// deletes the Job), annotated as a manual run.
func JobFrom(cj *unstructured.Unstructured, now time.Time) (*unstructured.Unstructured, error) {
	tmpl, ok, err := unstructured.NestedMap(cj.Object, "spec", "jobTemplate")
	if err != nil || !ok {
		return nil, fmt.Errorf("CronJob %s has no jobTemplate: %v", cj.GetName(), err)
	}
	spec, _, _ := unstructured.NestedMap(tmpl, "spec")
	labels, _, _ := unstructured.NestedMap(tmpl, "metadata", "labels")
	// Base 36 seconds: six characters keep 48+1+6 within a DNS label.
	name := cj.GetName() + "-" + strconv.FormatInt(now.Unix(), 36)
	job := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "batch/v1", "kind": "Job",
		"metadata": map[string]any{
			"name": name, "namespace": cj.GetNamespace(), "labels": labels,
			"annotations": map[string]any{"cronjob.kubernetes.io/instantiate": "manual"},
		},
		"spec": spec,
	}}
	t, f := true, true
	job.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: cj.GetName(), UID: cj.GetUID(), Controller: &t, BlockOwnerDeletion: &f}})
	return job, nil
}

// ReadSpec reads a CronJob's Spec annotation; ok is false when it has
// none (not made by cairn).
func ReadSpec(cj *unstructured.Unstructured) (Spec, bool) {
	var s Spec
	raw, ok := cj.GetAnnotations()[AnnotationSpec]
	if !ok || json.Unmarshal([]byte(raw), &s) != nil {
		return s, false
	}
	return s, true
}

// Maintenance CronJob: one per install, named MaintenanceName.
const (
	MaintenanceName = "cairn-maintenance"
	// LabelMaintenance marks the maintenance CronJob (and its Jobs): it
	// is not a schedule, so it carries no LabelSchedule.
	LabelMaintenance = "cairn.io/maintenance"
	// DefaultMaintenanceSchedule runs maintenance daily at 03:00 UTC.
	DefaultMaintenanceSchedule = "0 3 * * *"
)

// MaintenanceArgs is the maintenance container's command line: extra are
// `cluster maintenance run`'s flags as given.
func MaintenanceArgs(o Options, extra []string) []string {
	args := []string{"cluster", "maintenance", "run", "--namespace", o.Namespace}
	return append(args, extra...)
}

// MaintenanceCronJob builds the CronJob that runs `cairn cluster
// maintenance run` on o.Schedule (o.Name is ignored). Like a schedule's,
// it never runs twice at once and is not retried: the next run comes.
func MaintenanceCronJob(o Options, extra []string) (*unstructured.Unstructured, error) {
	tr, err := Translate(o.Schedule)
	if err != nil {
		return nil, err
	}
	o.Name = MaintenanceName
	labels := map[string]any{LabelMaintenance: "true", labelPartOf: "cairn"}
	return cronJob(o, tr, "maintenance", labels, map[string]any{}, MaintenanceArgs(o, extra))
}
