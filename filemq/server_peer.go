package filemq

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-zeromq/zmq4"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maxCredit caps a client's accumulated credit so that NOMs cannot overflow it.
const maxCredit = 1 << 40

// job is one file operation queued for a client.
type job struct {
	op     uint8
	info   fileInfo
	offset int64
	f      *os.File // open while the job is being sent
}

// peer is the server's state for one connected client.
type peer struct {
	id       []byte
	name     string // X-CLIENT option, if the client sent one
	subs     []string
	caches   map[string]map[string]string // per subscription: the ICANHAZ cache
	credit   int64
	window   int64 // the first grant: the client's credit window
	granted  uint64
	sent     uint64
	seq      uint64
	queue    []*job
	cur      *job
	lastSeen time.Time
	files    uint64 // files completed
	bytes    uint64 // file bytes sent
}

func (p *peer) matches(vpath string) bool {
	for _, s := range p.subs {
		if pathMatches(s, vpath) {
			return true
		}
	}
	return false
}

// pathMatches reports whether vpath is at or under the subscription sub,
// segment by segment ("/logs" matches "/logs/a" but not "/logsx").
func pathMatches(sub, vpath string) bool {
	return sub == "/" || vpath == sub || strings.HasPrefix(vpath, sub+"/")
}

// cleanSubPath validates a subscription path from a client.
func cleanSubPath(p string) (string, error) {
	if p != "/" {
		p = strings.TrimSuffix(p, "/")
	}
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("path %.80q is not a clean absolute path", p)
	}
	return p, nil
}

// dropJob stops the job for vpath, queued or in progress.
func (p *peer) dropJob(vpath string, op uint8) {
	if p.cur != nil && p.cur.info.vpath == vpath && p.cur.op == op {
		p.closeCur()
	}
	q := p.queue[:0]
	for _, j := range p.queue {
		if j.info.vpath != vpath || j.op != op {
			q = append(q, j)
		}
	}
	p.queue = q
}

func (p *peer) closeCur() {
	if p.cur != nil && p.cur.f != nil {
		p.cur.f.Close()
	}
	p.cur = nil
}

func (s *Server) loop() {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.ClientTimeout / 4)
	defer tick.Stop()
	defer func() {
		for _, p := range s.clients {
			p.closeCur()
		}
	}()
	for {
		s.pump()
		select {
		case msg := <-s.in:
			s.handle(msg)
		case ch := <-s.changes:
			s.apply(ch)
		case <-tick.C:
			s.expire()
		case reply := <-s.statsReq:
			reply <- s.stats()
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *Server) send(id []byte, m *Msg) {
	b, err := m.Encode(s.buf[:0])
	if err != nil {
		s.log.Error().Err(err).Msg("filemq: encode")
		return
	}
	s.buf = b
	s.sendFrame(id, b)
}

// sendFrame writes one command. zmq4's ROUTER write is synchronous and
// holds one lock across the TCP write to any peer, with no deadline, so the
// buffer can be reused afterwards. Credit keeps the bytes in flight within
// what socket buffers absorb; should a write still block (a peer gone
// without a FIN, its buffers full), a watchdog closes the socket after
// SendTimeout and the server binds a fresh one: clients reconnect and resume.
func (s *Server) sendFrame(id, b []byte) {
	sock := s.sock
	watchdog := time.AfterFunc(s.cfg.SendTimeout, func() { sock.Close() })
	err := sock.Send(zmq4.NewMsgFrom(id, b))
	if !watchdog.Stop() {
		s.restartSocket()
		return
	}
	if err != nil && s.ctx.Err() == nil {
		s.log.Debug().Err(err).Msg("filemq: send")
	}
}

// restartSocket replaces a ROUTER closed by the send watchdog. Every
// client's state goes with it; they reconnect, resync and resume.
func (s *Server) restartSocket() {
	if s.ctx.Err() != nil {
		return
	}
	s.restarts.Add(1)
	s.log.Warn().Dur("after", s.cfg.SendTimeout).Msg("filemq: a send blocked; rebinding the socket")
	for _, p := range s.clients {
		p.closeCur()
	}
	clear(s.clients)
	for s.ctx.Err() == nil {
		sock, err := bindRouter(s.ctx, s.endpoint, s.sec)
		if err == nil {
			s.sockMu.Lock()
			defer s.sockMu.Unlock()
			if s.ctx.Err() != nil { // Close ran meanwhile and closed the old socket
				sock.Close()
				return
			}
			s.sock = sock
			s.wg.Add(1)
			go s.readLoop(sock)
			return
		}
		s.log.Error().Err(err).Msg("filemq: rebind")
		select {
		case <-time.After(time.Second):
		case <-s.ctx.Done():
		}
	}
}

func (s *Server) reject(id []byte, reason string) {
	s.malformed.Add(1)
	s.log.Warn().Hex("client", id).Str("reason", reason).Msg("filemq: rejected client command")
	if len(reason) > 255 {
		reason = reason[:255]
	}
	s.send(id, &Msg{Cmd: CmdRTFM, Reason: reason})
	if p, ok := s.clients[string(id)]; ok {
		p.closeCur()
		delete(s.clients, string(id))
	}
}

func (s *Server) handle(zm zmq4.Msg) {
	if len(zm.Frames) != 2 {
		if len(zm.Frames) > 0 {
			s.reject(zm.Frames[0], fmt.Sprintf("expected one frame per command, got %d", len(zm.Frames)-1))
		}
		return
	}
	id := zm.Frames[0]
	m, err := Decode(zm.Frames[1])
	if err != nil {
		s.reject(id, err.Error())
		return
	}
	p := s.clients[string(id)]
	if p != nil {
		p.lastSeen = time.Now()
	}
	switch m.Cmd {
	case CmdOHAI:
		// A client may send OHAI again at any time: it starts afresh.
		if p != nil {
			p.closeCur()
		}
		s.clients[string(id)] = &peer{id: append([]byte(nil), id...), lastSeen: time.Now()}
		s.send(id, &Msg{Cmd: CmdOHAIOK})
	case CmdHUGZ:
		if p == nil {
			s.reject(id, "HUGZ before OHAI")
			return
		}
		s.send(id, &Msg{Cmd: CmdHUGZOK})
	case CmdHUGZOK:
	case CmdKTHXBAI:
		if p != nil {
			p.closeCur()
			delete(s.clients, string(id))
		}
	case CmdICANHAZ:
		if p == nil {
			s.reject(id, "ICANHAZ before OHAI")
			return
		}
		sub, err := cleanSubPath(m.Path)
		if err != nil {
			s.reject(id, "ICANHAZ: "+err.Error())
			return
		}
		if !containsString(p.subs, sub) {
			p.subs = append(p.subs, sub)
		}
		if n := m.Options[optClient]; n != "" && len(n) <= 255 {
			p.name = n
		}
		if m.Options[optResync] == "1" {
			s.resync(p, sub, m.Cache)
		}
		s.send(id, &Msg{Cmd: CmdICANHAZOK})
	case CmdNOM:
		if p == nil {
			s.reject(id, "NOM before OHAI")
			return
		}
		if m.Credit > maxCredit || p.credit+int64(m.Credit) > maxCredit {
			s.reject(id, fmt.Sprintf("NOM: credit %d exceeds %d", m.Credit, int64(maxCredit)))
			return
		}
		if p.granted == 0 {
			p.window = int64(m.Credit)
		}
		p.credit += int64(m.Credit)
		p.granted += m.Credit
	default:
		s.reject(id, fmt.Sprintf("%v is not a client command", m.Cmd))
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// resync queues every published file under sub that the client's cache
// does not show complete, from the cached offset for partial files.
func (s *Server) resync(p *peer, sub string, cache map[string]string) {
	if p.caches == nil {
		p.caches = map[string]map[string]string{}
	}
	p.caches[sub] = cache
	names := make([]string, 0, len(s.files))
	for v := range s.files {
		if pathMatches(sub, v) {
			names = append(names, v)
		}
	}
	sort.Strings(names)
	for _, v := range names {
		info := s.files[v]
		p.dropJob(v, OpCreate)
		if skip, offset := p.held(sub, info); !skip {
			p.queue = append(p.queue, &job{op: OpCreate, info: info, offset: offset})
		}
	}
}

// held looks info up in the cache the client sent with its ICANHAZ for
// sub: whether it holds that version complete, or else the offset to resume
// from. The entry is used once: later versions are sent in full.
func (p *peer) held(sub string, info fileInfo) (skip bool, offset int64) {
	cache := p.caches[sub]
	key := info.vpath
	v, ok := cache[key]
	if !ok {
		key = strings.TrimPrefix(strings.TrimPrefix(info.vpath, sub), "/")
		v = cache[key]
	}
	switch {
	case v == "":
		return false, 0
	case v == cacheFull+info.sha:
		delete(cache, key)
		return true, 0
	case strings.HasPrefix(v, cachePartial):
		// partial:<offset>:<sha256>, valid only for the same version.
		parts := strings.SplitN(strings.TrimPrefix(v, cachePartial), ":", 2)
		if len(parts) == 2 && parts[1] == info.sha {
			if off, err := strconv.ParseInt(parts[0], 10, 64); err == nil && off >= 0 && off <= info.size {
				delete(cache, key)
				return false, off
			}
		}
	}
	return false, 0
}

// heldAny is held for the most specific subscription covering info.
func (p *peer) heldAny(info fileInfo) (skip bool, offset int64) {
	best := ""
	for _, sub := range p.subs {
		if pathMatches(sub, info.vpath) && len(sub) > len(best) {
			best = sub
		}
	}
	return p.held(best, info)
}

// apply records scan results and queues them for the clients that subscribe.
func (s *Server) apply(changes []change) {
	for _, c := range changes {
		if c.op == OpDelete {
			delete(s.files, c.info.vpath)
		} else {
			s.files[c.info.vpath] = c.info
		}
		for _, p := range s.clients {
			if !p.matches(c.info.vpath) {
				continue // filtered here, not at the client as the reference does
			}
			p.dropJob(c.info.vpath, OpCreate)
			p.dropJob(c.info.vpath, OpDelete)
			var offset int64
			if c.op == OpCreate {
				// A file published after the ICANHAZ (a server that just
				// started is still hashing) may be one the client holds.
				var skip bool
				if skip, offset = p.heldAny(c.info); skip {
					continue
				}
			}
			p.queue = append(p.queue, &job{op: c.op, info: c.info, offset: offset})
		}
	}
}

func (s *Server) expire() {
	now := time.Now()
	for k, p := range s.clients {
		if now.Sub(p.lastSeen) > s.cfg.ClientTimeout {
			s.log.Info().Hex("client", p.id).Msg("filemq: client timed out")
			p.closeCur()
			delete(s.clients, k)
		}
	}
}

// pump sends chunks round-robin while some client has credit and work.
func (s *Server) pump() {
	keys := make([]string, 0, len(s.clients))
	for k := range s.clients {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for progress := true; progress; {
		progress = false
		for _, k := range keys {
			if p, ok := s.clients[k]; ok && s.sendOne(p) {
				progress = true
			}
		}
		if len(s.in) > 0 {
			return // let commands (NOM, KTHXBAI) in between chunks
		}
	}
}

func (s *Server) headers(info *fileInfo, chunk []byte) map[string]string {
	return map[string]string{
		hdrSHA256: info.sha,
		hdrSize:   strconv.FormatInt(info.size, 10),
		hdrCRC32C: crcHeader(chunk),
	}
}

// sendOne sends the next command of p's current job; false if it cannot.
func (s *Server) sendOne(p *peer) bool {
	if p.cur == nil {
		if len(p.queue) == 0 {
			return false
		}
		j := p.queue[0]
		p.queue = p.queue[1:]
		if j.op == OpDelete {
			p.seq++
			s.send(p.id, &Msg{Cmd: CmdCHEEZBURGER, Sequence: p.seq, Operation: OpDelete, Filename: j.info.vpath})
			return true
		}
		f, err := os.Open(j.info.local)
		if err != nil {
			return true // gone: the next scan reports the delete
		}
		if st, err := f.Stat(); err != nil || st.Size() != j.info.size || !st.ModTime().Equal(j.info.mtime) {
			f.Close()
			return true // changed since hashed: the next scan republishes it
		}
		j.f = f
		p.cur = j
	}
	j := p.cur
	if j.offset >= j.info.size {
		p.seq++
		s.send(p.id, &Msg{Cmd: CmdCHEEZBURGER, Sequence: p.seq, Operation: OpCreate, Filename: j.info.vpath,
			Offset: uint64(j.info.size), EOF: true, Headers: s.headers(&j.info, nil)})
		p.closeCur()
		p.files++
		return true
	}
	n := min(int64(s.cfg.ChunkSize), j.info.size-j.offset, p.credit)
	if n <= 0 {
		return false // the client has no credit left: never send beyond it
	}
	return s.sendChunk(p, j, n)
}

// sendChunk reads n bytes of the job's file straight into the frame after
// room for the command's header: the header's length is known beforehand
// because the CRC header has a fixed width (8 hex digits).
func (s *Server) sendChunk(p *peer, j *job, n int64) bool {
	m := Msg{Cmd: CmdCHEEZBURGER, Sequence: p.seq + 1, Operation: OpCreate, Filename: j.info.vpath,
		Offset: uint64(j.offset), Headers: s.headers(&j.info, nil)}
	head, err := m.Encode(s.buf[:0])
	if err != nil {
		p.closeCur()
		return true
	}
	hl := len(head)
	if cap(head) < hl+int(n) {
		head = append(make([]byte, 0, hl+s.cfg.ChunkSize), head...)
	}
	b := head[:hl+int(n)]
	if _, err := j.f.ReadAt(b[hl:], j.offset); err != nil {
		if err != io.EOF {
			s.log.Warn().Err(err).Str("file", j.info.local).Msg("filemq: read chunk")
		}
		p.closeCur() // unreadable, or shrank since hashed: the next scan republishes it
		return true
	}
	m.Headers[hdrCRC32C] = crcHeader(b[hl:])
	if _, err := m.Encode(b[:0]); err != nil { // same length: rewrites the header in place
		p.closeCur()
		return true
	}
	binary.BigEndian.PutUint32(b[hl-4:hl], uint32(n))
	s.buf = b
	p.seq++
	s.sendFrame(p.id, b)
	j.offset += n
	p.credit -= n
	p.sent += uint64(n)
	p.bytes += uint64(n)
	return true
}

func crcHeader(chunk []byte) string { return fmt.Sprintf("%08x", crc32.Checksum(chunk, castagnoli)) }
