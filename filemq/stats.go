package filemq

import (
	"sort"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/zmtpguard"
)

// ClientShipping is the server's view of one connected client.
type ClientShipping struct {
	ID            string   `json:"id"`             // hex identity of the client's socket
	Name          string   `json:"name,omitempty"` // the client's X-CLIENT option
	Subscriptions []string `json:"subscriptions"`
	Granted       uint64   `json:"granted"`       // credit granted in total (bytes)
	Sent          uint64   `json:"sent"`          // file bytes sent in total; never above Granted
	Credit        int64    `json:"credit"`        // credit left
	InFlight      int64    `json:"in_flight"`     // bytes sent whose credit the client has not granted back (window − credit left)
	ShippedFiles  uint64   `json:"shipped_files"` // files sent to the end
	PendingFiles  int      `json:"pending_files"` // queued, not started
	PendingBytes  int64    `json:"pending_bytes"` // bytes still to send, current file included
	Current       string   `json:"current,omitempty"`
	CurrentOffset int64    `json:"current_offset,omitempty"` // bytes of Current sent so far
	CurrentSize   int64    `json:"current_size,omitempty"`
}

// ServerStats is a snapshot of a Server, for status commands and dashboards.
type ServerStats struct {
	Files     int    `json:"files"`     // files published
	Bytes     int64  `json:"bytes"`     // their total size
	Malformed uint64 `json:"malformed"` // commands refused with RTFM
	Restarts  uint64 `json:"restarts"`  // socket rebinds after a blocked send
	// Refused counts connections refused for their security: with Keys,
	// clients with no CURVE, an unadmitted key or a failed handshake;
	// without, CURVE clients.
	Refused uint64           `json:"refused"`
	Clients []ClientShipping `json:"clients"`
}

// Stats returns a snapshot of what the server publishes and ships to whom.
func (s *Server) Stats() (ServerStats, error) {
	reply := make(chan ServerStats, 1)
	select {
	case s.statsReq <- reply:
		return <-reply, nil
	case <-s.ctx.Done():
		return ServerStats{}, ErrClosed
	}
}

func (s *Server) stats() ServerStats {
	st := ServerStats{Files: len(s.files), Malformed: s.malformed.Load(), Restarts: s.restarts.Load(),
		Refused: refused(s.sec, s.guard)}
	for _, f := range s.files {
		st.Bytes += f.size
	}
	for _, p := range s.clients {
		c := ClientShipping{
			ID: hexID(p.id), Name: p.name, Subscriptions: append([]string(nil), p.subs...),
			Granted: p.granted, Sent: p.sent, Credit: p.credit, ShippedFiles: p.files,
			PendingFiles: len(p.queue), InFlight: max(p.window-p.credit, 0),
		}
		for _, j := range p.queue {
			if j.op == OpCreate {
				c.PendingBytes += j.info.size - j.offset
			}
		}
		if j := p.cur; j != nil {
			c.Current, c.CurrentOffset, c.CurrentSize = j.info.vpath, j.offset, j.info.size
			c.PendingBytes += j.info.size - j.offset
		}
		st.Clients = append(st.Clients, c)
	}
	sort.Slice(st.Clients, func(i, k int) bool { return st.Clients[i].ID < st.Clients[k].ID })
	return st
}

// refused sums the security refusals of a socket's CURVE mechanism (nil
// when open) and of its guarded transport.
func refused(sec *curve.Security, guard *zmtpguard.Counters) uint64 {
	n := guard.Mechanism()
	if sec != nil {
		st := sec.Stats()
		n += st.Failures + st.Unauthorized
	}
	return n
}

func hexID(id []byte) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 0, 2*len(id))
	for _, c := range id {
		b = append(b, digits[c>>4], digits[c&15])
	}
	return string(b)
}
