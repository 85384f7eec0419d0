package logpub

// Wire format of sequence-based resume (used by Collector), an extension of
// the frames in codec.go that older peers never see: a SUBSCRIBE with the
// resume flag carries cursors after its lists, and the hub answers with
// SOURCES frames between the history and END.
//
//	SUBSCRIBE  ... services[list] nodes[list] cursors    (flag subResume)
//	           cursors = n[4] n × (source[8] seq[8])      "I have up to seq"
//	SOURCES    n[4] n × (source[8] seq[8] service[str8])  hub → subscriber:
//	           the last sequence the hub accepted of each source, taken
//	           with the history snapshot
const frameSources byte = 7

// MaxCursors bounds the cursors of one resume request and the sources of
// one SOURCES frame (the Hub remembers at most 65536 sources).
const MaxCursors = 65536

// SourceSeq is a position in one source's sequence: in a resume request the
// last event the subscriber already holds, in a SOURCES report the last
// event the hub accepted.
type SourceSeq struct {
	Source  uint64
	Service string // empty in a resume request
	Seq     uint64
}

func appendCursors(b []byte, l []SourceSeq) []byte {
	if len(l) > MaxCursors {
		l = l[:MaxCursors]
	}
	b = appendU32(b, uint32(len(l)))
	for _, c := range l {
		b = appendU64(b, c.Source)
		b = appendU64(b, c.Seq)
	}
	return b
}

func (r *reader) cursors() []SourceSeq {
	n := r.u32("cursor count")
	if r.err != nil {
		return nil
	}
	if n > MaxCursors || uint64(n)*16 > uint64(len(r.b)) {
		r.err = frameErr("cursor count %d exceeds %d or the body", n, MaxCursors)
		return nil
	}
	l := make([]SourceSeq, n)
	for i := range l {
		l[i].Source = r.u64("cursor source")
		l[i].Seq = r.u64("cursor seq")
	}
	return l
}

// sourcesFrameBytes bounds one SOURCES frame; longer reports take several.
const sourcesFrameBytes = 256 << 10

// appendSources appends as many SOURCES frames as l needs.
func appendSources(b []byte, l []SourceSeq) []byte {
	for first := true; first || len(l) > 0; first = false {
		f, st := beginFrame(b, frameSources)
		cnt := len(f)
		f = appendU32(f, 0)
		n := 0
		for n < len(l) && len(f)-st < sourcesFrameBytes {
			f = appendU64(f, l[n].Source)
			f = appendU64(f, l[n].Seq)
			f = appendStr8(f, l[n].Service)
			n++
		}
		putU32(f[cnt:], uint32(n))
		b = finishFrame(f, st)
		l = l[n:]
	}
	return b
}

// decodeSources decodes a SOURCES body, appending to out.
func decodeSources(body []byte, out []SourceSeq) ([]SourceSeq, error) {
	r := &reader{b: body}
	n := r.u32("sources count")
	if r.err != nil {
		return out, r.err
	}
	if n > MaxCursors || uint64(n)*17 > uint64(len(r.b)) {
		return out, frameErr("sources count %d exceeds %d or the body", n, MaxCursors)
	}
	for i := uint32(0); i < n; i++ {
		s := SourceSeq{Source: r.u64("source id"), Seq: r.u64("source seq"), Service: r.str8("source service")}
		if r.err != nil {
			return out, r.err
		}
		out = append(out, s)
	}
	return out, r.done("sources")
}
