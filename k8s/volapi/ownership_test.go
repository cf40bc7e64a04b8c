package volapi

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) *metav1.MicroTime { m := metav1.NewMicroTime(now.Add(-ago)); return &m }
	self := AgentID("node-1", "agent-x", now.Add(-time.Minute))
	before := AgentID("node-1", "agent-x", now.Add(-time.Hour)) // self before a restart
	if self == before {
		t.Fatal("restarted agent has the same ID")
	}
	const ttl = 30 * time.Second
	for _, tc := range []struct {
		name  string
		phase Phase
		own   Ownership
		want  Action
	}{
		{"new", PhaseNew, Ownership{}, Claim},
		{"no phase yet", "", Ownership{}, Claim},
		{"completed", PhaseCompleted, Ownership{Agent: before, Heartbeat: at(time.Hour)}, Leave},
		{"failed", PhaseFailed, Ownership{}, Leave},
		{"ours, running", PhaseInProgress, Ownership{Agent: self, Heartbeat: at(time.Hour), Attempts: 1}, Leave},
		{"other agent alive", PhaseInProgress, Ownership{Agent: "node-1/agent-y/1", Heartbeat: at(10 * time.Second), Attempts: 1}, Leave},
		{"our earlier incarnation, stale", PhaseInProgress, Ownership{Agent: before, Heartbeat: at(time.Minute), Attempts: 1}, Retry},
		{"our earlier incarnation, fresh heartbeat: wait", PhaseInProgress, Ownership{Agent: before, Heartbeat: at(5 * time.Second), Attempts: 1}, Leave},
		{"no heartbeat at all", PhaseInProgress, Ownership{Agent: before, Attempts: 1}, Retry},
		{"stale, attempts used up", PhaseInProgress, Ownership{Agent: before, Heartbeat: at(time.Minute), Attempts: 3}, GiveUp},
	} {
		if got := Decide(tc.phase, tc.own, self, now, ttl, 3); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
