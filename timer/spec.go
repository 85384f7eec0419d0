package timer

import (
	"errors"
	"fmt"
	"time"
	"unicode"

	"github.com/robfig/cron/v3"
)

// Periods are the tick periods the service offers.
var Periods = []time.Duration{time.Second, 100 * time.Millisecond, 10 * time.Millisecond}

// Scope says where a schedule fires.
type Scope string

const (
	// ScopeNode fires the schedule on every timer node, to that node's watchers.
	ScopeNode Scope = "node"
	// ScopeCluster fires each occurrence once in the mesh, on the live timer
	// node with the lowest UUID, to that node's watchers.
	ScopeCluster Scope = "cluster"
)

// Errors callers can test with errors.Is.
var (
	ErrClosed      = errors.New("timer: closed")
	ErrBadPeriod   = errors.New("timer: unsupported tick period")
	ErrBadSpec     = errors.New("timer: invalid schedule")
	ErrUnknownName = errors.New("timer: unknown schedule")
)

// Spec describes a named schedule. Exactly one of Every, Cron and At is set.
type Spec struct {
	Name string `json:"name"`
	// Every fires at every whole multiple of Every since the Unix epoch
	// (so "every 5s" fires at :00, :05, ... on every node).
	Every Duration `json:"every,omitempty"`
	// Cron is a cron expression with an optional leading seconds field,
	// or a descriptor (@hourly, @every 1h30m), parsed by robfig/cron/v3.
	Cron string `json:"cron,omitempty"`
	// TZ is the IANA time zone of Cron (default UTC).
	TZ string `json:"tz,omitempty"`
	// At fires once, at that instant.
	At time.Time `json:"at,omitzero"`
	// Scope is ScopeNode (default) or ScopeCluster.
	Scope Scope `json:"scope,omitempty"`
	// Payload is handed to watchers with each fire.
	Payload string `json:"payload,omitempty"`
}

// MaxPayload bounds a schedule's payload.
const MaxPayload = 64 << 10

// Duration is a time.Duration that reads and writes JSON as "5s".
type Duration time.Duration

// MarshalText writes d as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a time.ParseDuration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("timer: duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Validate checks s and returns an error wrapping ErrBadSpec that says what is wrong.
func (s Spec) Validate() error {
	_, err := s.schedule()
	return err
}

// Next returns the first occurrence of s strictly after t, or the zero time
// if there is none (a one-shot already past).
func (s Spec) Next(t time.Time) (time.Time, error) {
	sc, err := s.schedule()
	if err != nil {
		return time.Time{}, err
	}
	return sc.next(t), nil
}

func badSpec(name, format string, args ...any) error {
	return fmt.Errorf("%w %q: %s", ErrBadSpec, name, fmt.Sprintf(format, args...))
}

func validName(name string) error {
	if name == "" {
		return badSpec(name, "empty name")
	}
	if len(name) > MaxName {
		return badSpec(name[:16]+"...", "name longer than %d bytes", MaxName)
	}
	for _, r := range name {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_' || r == '.' || r == ':' || r == '/') {
			return badSpec(name, "name may hold only letters, digits and -_.:/")
		}
	}
	return nil
}

// schedule is the occurrence rule of a valid Spec.
type schedule struct {
	every time.Duration
	cron  cron.Schedule
	at    time.Time
}

func (s Spec) schedule() (schedule, error) {
	if err := validName(s.Name); err != nil {
		return schedule{}, err
	}
	switch s.Scope {
	case "", ScopeNode, ScopeCluster:
	default:
		return schedule{}, badSpec(s.Name, "scope %q (want node or cluster)", s.Scope)
	}
	if len(s.Payload) > MaxPayload {
		return schedule{}, badSpec(s.Name, "payload of %d bytes (max %d)", len(s.Payload), MaxPayload)
	}
	set := 0
	if s.Every != 0 {
		set++
	}
	if s.Cron != "" {
		set++
	}
	if !s.At.IsZero() {
		set++
	}
	if set != 1 {
		return schedule{}, badSpec(s.Name, "set exactly one of every, cron and at")
	}
	if s.TZ != "" && s.Cron == "" {
		return schedule{}, badSpec(s.Name, "a time zone applies only to cron")
	}
	switch {
	case s.Every != 0:
		if s.Every < Duration(time.Millisecond) {
			return schedule{}, badSpec(s.Name, "every %v: want a duration of at least 1ms", time.Duration(s.Every))
		}
		return schedule{every: time.Duration(s.Every)}, nil
	case s.Cron != "":
		expr := s.Cron
		if s.TZ != "" {
			if _, err := time.LoadLocation(s.TZ); err != nil {
				return schedule{}, badSpec(s.Name, "time zone %q: %v", s.TZ, err)
			}
			expr = "CRON_TZ=" + s.TZ + " " + expr
		}
		c, err := parseCron(expr)
		if err != nil {
			return schedule{}, badSpec(s.Name, "cron %q: %v", s.Cron, err)
		}
		return schedule{cron: c}, nil
	default:
		return schedule{at: s.At}, nil
	}
}

// parseCron wraps the parser, which panics on some inputs in v3.0.1
// (e.g. "TZ=" with nothing after it).
func parseCron(expr string) (c cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unparsable: %v", r)
		}
	}()
	return cronParser.Parse(expr)
}

func (sc schedule) next(t time.Time) time.Time {
	switch {
	case sc.every > 0:
		return NextAligned(t, sc.every)
	case sc.cron != nil:
		return sc.cron.Next(t)
	default:
		if t.Before(sc.at) {
			return sc.at
		}
		return time.Time{}
	}
}

// Tick is one tick of a period as a client receives it.
type Tick struct {
	Period time.Duration
	N      int64     // tick number: At = Unix epoch + N·Period
	At     time.Time // scheduled instant
	Missed int64     // ticks of this period skipped just before this one
}

// Fire is one firing of a schedule.
type Fire struct {
	Name    string    `json:"name"`
	At      time.Time `json:"at"`       // the scheduled occurrence
	FiredAt time.Time `json:"fired_at"` // when it was fired
	Late    bool      `json:"late,omitempty"`
	Node    string    `json:"node,omitempty"` // UUID of the firing node, if on a mesh
	Scope   Scope     `json:"scope"`
	Payload string    `json:"payload,omitempty"`
}
