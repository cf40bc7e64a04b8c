package volapi

import (
	"fmt"
	"time"
)

// AgentID names one running agent process: its node, its pod and when it
// started, so that a restarted agent (same node, same pod) is another
// owner than the one that died.
func AgentID(node, pod string, start time.Time) string {
	return fmt.Sprintf("%s/%s/%d", node, pod, start.UnixNano())
}

// Action is what an agent does with an item of its node.
type Action int

// The actions Decide chooses.
const (
	Leave  Action = iota // finished, or owned by a live agent
	Claim                // new: take it (InProgress, Agent, Heartbeat, Attempts+1)
	Retry                // half-done by an agent that stopped renewing its heartbeat: take it again
	GiveUp               // half-done too often: mark it Failed
)

func (a Action) String() string {
	return [...]string{"leave", "claim", "retry", "give up"}[a]
}

// Decide says what agent self does with an item in phase p owned as o, at
// now. An owner renews Heartbeat well within ttl while it works, so an
// InProgress item whose heartbeat is older than ttl (or missing) was left
// by an agent that died, even when that agent was self's earlier
// incarnation: it is retried until maxAttempts attempts were made, then
// failed, and never reported done. Claims are written with the item's
// resourceVersion, so two agents cannot both win one.
func Decide(p Phase, o Ownership, self string, now time.Time, ttl time.Duration, maxAttempts int32) Action {
	switch p {
	case PhaseCompleted, PhaseFailed:
		return Leave
	case "", PhaseNew:
		return Claim
	}
	if o.Agent == self {
		return Leave // ours, running in this process
	}
	if o.Heartbeat != nil && now.Sub(o.Heartbeat.Time) < ttl {
		return Leave
	}
	if o.Attempts >= maxAttempts {
		return GiveUp
	}
	return Retry
}
