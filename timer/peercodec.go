package timer

import (
	"encoding/json"
	"fmt"
	"time"
)

// The peer protocol between timer nodes rides on the mesh (SHOUT to the
// timer group, WHISPER to one peer): two frames, the tag peerTag (whispers
// of other logd components carry other tags and are not ours) and a JSON
// object.
//
//	{"t":"upsert","recs":[...]}   a schedule changed (one record)
//	{"t":"sync","recs":[...]}     the sender's full set, tombstones included
//	{"t":"fired","name":N,"at":T} a cluster occurrence went out
//	{"t":"clock-req","t1":ns}     clock probe
//	{"t":"clock-rep","t1":ns,"t2":ns}
type peerMsg struct {
	V       int       `json:"v"`
	Type    string    `json:"t"`
	Records []*record `json:"recs,omitempty"`
	Name    string    `json:"name,omitempty"`
	At      time.Time `json:"at,omitzero"`
	T1      int64     `json:"t1,omitempty"`
	T2      int64     `json:"t2,omitempty"`
	// Leader, on a sync, says the sender fires cluster schedules now.
	Leader bool `json:"leader,omitempty"`
}

// peerTag is the first frame of every timer peer message.
var peerTag = []byte("logmesh-timer")

// isPeerMsg reports whether frames are addressed to the timer service.
func isPeerMsg(frames [][]byte) bool {
	return len(frames) > 0 && string(frames[0]) == string(peerTag)
}

const (
	peerVersion = 1
	// maxPeerMsg bounds one peer message (a full sync of many schedules).
	maxPeerMsg = 16 << 20
	maxRecords = 100000
)

func encodePeerMsg(m *peerMsg) ([][]byte, error) {
	m.V = peerVersion
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("timer: encode %s: %w", m.Type, err)
	}
	return [][]byte{peerTag, b}, nil
}

// decodePeerMsg parses and checks one peer message; errors wrap ErrMalformed.
func decodePeerMsg(frames [][]byte) (*peerMsg, error) {
	if len(frames) != 2 || !isPeerMsg(frames) {
		return nil, fmt.Errorf("%w: peer message of %d frames, want 2 starting with %q", ErrMalformed, len(frames), peerTag)
	}
	body := frames[1]
	if len(body) > maxPeerMsg {
		return nil, fmt.Errorf("%w: peer message of %d bytes (max %d)", ErrMalformed, len(body), maxPeerMsg)
	}
	var m peerMsg
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%w: peer message: %v", ErrMalformed, err)
	}
	if m.V != peerVersion {
		return nil, fmt.Errorf("%w: peer message version %d, want %d", ErrMalformed, m.V, peerVersion)
	}
	switch m.Type {
	case "upsert", "sync":
		if len(m.Records) > maxRecords {
			return nil, fmt.Errorf("%w: %s of %d records (max %d)", ErrMalformed, m.Type, len(m.Records), maxRecords)
		}
		for i, r := range m.Records {
			if r == nil {
				return nil, fmt.Errorf("%w: %s: record %d is null", ErrMalformed, m.Type, i)
			}
			var err error
			if r.Deleted {
				err = validName(r.Spec.Name)
			} else {
				err = r.Spec.Validate()
			}
			if err != nil {
				return nil, fmt.Errorf("%w: %s: record %d: %v", ErrMalformed, m.Type, i, err)
			}
		}
	case "fired":
		if err := validName(m.Name); err != nil {
			return nil, fmt.Errorf("%w: fired: %v", ErrMalformed, err)
		}
		if m.At.IsZero() {
			return nil, fmt.Errorf("%w: fired %q without a time", ErrMalformed, m.Name)
		}
	case "clock-req", "clock-rep":
	default:
		return nil, fmt.Errorf("%w: peer message type %q", ErrMalformed, m.Type)
	}
	return &m, nil
}
