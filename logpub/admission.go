package logpub

import (
	"errors"

	"github.com/logmesh/logmesh/internal/admission"
)

// Default per-source limits of a Hub's TCP endpoints (HubConfig); see
// package admission for why they exist.
const (
	DefaultMaxPendingPerSource = admission.DefaultMaxPending
	DefaultHandshakesPerSource = admission.DefaultHandshakesPerSecond
)

// errShed: a connection closed at once by the per-source limits.
var errShed = errors.New("logpub: connection shed: its source is over its limit")
