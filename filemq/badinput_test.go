package filemq

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServerRejectsBadCommands sends malformed and out-of-order commands:
// each gets RTFM, is counted, and the server keeps serving others.
func TestServerRejectsBadCommands(t *testing.T) {
	src := fastDir(t)
	writeRandom(t, filepath.Join(src, "ok"), 1000, 1)
	s := testServer(t)
	mustNot(t, s.Publish(src, "/"))

	cases := []struct {
		name  string
		setup bool // OHAI first
		send  func(c *rawPeer)
	}{
		{"garbage", false, func(c *rawPeer) { c.sendRaw([]byte("GET / HTTP/1.0")) }},
		{"bad signature", false, func(c *rawPeer) { c.sendRaw([]byte{0xaa, 0xa2, 1}) }},
		{"truncated", true, func(c *rawPeer) { c.sendRaw([]byte{0xaa, 0xa3, byte(CmdNOM), 0, 1}) }},
		{"two frames", true, func(c *rawPeer) { c.sendRaw([]byte{0xaa, 0xa3, 9}, []byte{0xaa, 0xa3, 9}) }},
		{"NOM before OHAI", false, func(c *rawPeer) { c.send(Msg{Cmd: CmdNOM, Credit: 1}) }},
		{"path escapes", true, func(c *rawPeer) { c.send(Msg{Cmd: CmdICANHAZ, Path: "/../etc"}) }},
		{"relative path", true, func(c *rawPeer) { c.send(Msg{Cmd: CmdICANHAZ, Path: "etc"}) }},
		{"huge credit", true, func(c *rawPeer) { c.send(Msg{Cmd: CmdNOM, Credit: 1 << 62}) }},
		{"server command", true, func(c *rawPeer) { c.send(Msg{Cmd: CmdCHEEZBURGER, Filename: "/x"}) }},
		{"wrong version", false, func(c *rawPeer) { c.sendRaw(append([]byte{0xaa, 0xa3, 1, 6}, "FILEMQ\x00\x01"...)) }},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := rawDealer(t, s.Endpoint())
			if tc.setup {
				c.send(Msg{Cmd: CmdOHAI})
				c.expect(CmdOHAIOK)
			}
			tc.send(c)
			m := c.expect(CmdRTFM)
			if m.Reason == "" {
				t.Fatal("RTFM without a reason")
			}
			st, err := s.Stats()
			mustNot(t, err)
			if st.Malformed < uint64(i+1) {
				t.Fatalf("malformed count %d after %d bad commands", st.Malformed, i+1)
			}
		})
	}
	// Still serving.
	inbox := fastDir(t)
	c := testClient(t, inbox)
	mustNot(t, c.Subscribe("/"))
	mustNot(t, c.Connect(s.Endpoint()))
	waitFor(t, 10*time.Second, "a good client to get its file", func() bool { return len(treeHashes(t, inbox)) == 1 })
}

func shaHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func crcHex(b []byte) string {
	return strconv.FormatUint(uint64(crc32.Checksum(b, castagnoli)), 16)
}

// fakeServerSession accepts a real Client on a hand-driven ROUTER.
func fakeServerSession(t *testing.T) (*rawPeer, *Client, string) {
	t.Helper()
	srv, ep := rawRouter(t)
	dir := fastDir(t)
	inbox := filepath.Join(dir, "inbox")
	c := testClient(t, inbox)
	mustNot(t, c.Subscribe("/"))
	mustNot(t, c.Connect(ep))
	srv.expect(CmdOHAI)
	srv.send(Msg{Cmd: CmdOHAIOK})
	ic := srv.expect(CmdICANHAZ)
	if ic.Path != "/" || ic.Options[optResync] != "1" {
		t.Fatalf("ICANHAZ %+v", ic)
	}
	srv.send(Msg{Cmd: CmdICANHAZOK})
	if nom := srv.expect(CmdNOM); nom.Credit == 0 {
		t.Fatal("no credit granted")
	}
	return srv, c, dir
}

func burger(name string, off int64, data []byte, eof bool, h map[string]string) Msg {
	return Msg{Cmd: CmdCHEEZBURGER, Operation: OpCreate, Filename: name, Offset: uint64(off), EOF: eof, Headers: h, Chunk: data}
}

func waitEvent(t *testing.T, c *Client, typ EventType) Event {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		select {
		case e := <-c.Events():
			if e.Type == typ {
				return e
			}
		case <-timer.C:
			t.Fatalf("no %v event", typ)
		}
	}
}

// TestClientRejectsBadFiles: paths escaping the inbox, reserved paths, huge
// declared sizes and data beyond the declared size are refused with an
// event, and nothing is written outside the inbox.
func TestClientRejectsBadFiles(t *testing.T) {
	srv, c, dir := fakeServerSession(t)
	data := []byte("payload")
	ok := map[string]string{hdrSHA256: shaHex(data), hdrSize: "7", hdrCRC32C: crcHex(data)}
	bad := []struct {
		name string
		m    Msg
		want string
	}{
		{"dotdot", burger("/../evil", 0, data, true, ok), "escapes"},
		{"deep dotdot", burger("/a/../../evil", 0, data, true, ok), "escapes"},
		{"state dir", burger("/.filemq/manifest", 0, data, true, ok), "reserved"},
		{"relative", burger("evil", 0, data, true, ok), "subscription"},
		{"huge size", burger("/huge", 0, data, false, map[string]string{hdrSize: strconv.FormatInt(1<<62, 10)}), "exceeds"},
		{"beyond size", burger("/short", 0, data, true, map[string]string{hdrSize: "3"}), "beyond"},
		{"bad sha header", burger("/x", 0, data, true, map[string]string{hdrSHA256: "zz"}), "X-SHA256"},
	}
	for _, b := range bad {
		srv.send(b.m)
		e := waitEvent(t, c, FileRejected)
		if e.Err == nil || !strings.Contains(e.Err.Error(), b.want) {
			t.Errorf("%s: event %+v, want an error containing %q", b.name, e, b.want)
		}
	}
	// A malformed frame is counted and the session goes on.
	srv.sendRaw([]byte{0xaa, 0xa3, 8, 1})
	srv.send(burger("/good", 0, data, true, ok))
	if e := waitEvent(t, c, FileUpdated); e.Path != "good" {
		t.Fatalf("updated %q", e.Path)
	}
	entries, err := os.ReadDir(dir)
	mustNot(t, err)
	if len(entries) != 1 || entries[0].Name() != "inbox" {
		t.Fatalf("something was written outside the inbox: %v", entries)
	}
	got := treeHashes(t, filepath.Join(dir, "inbox"))
	if len(got) != 1 || got["good"] != shaHex(data) {
		t.Fatalf("inbox holds %s", relNames(got))
	}
	if st := c.Stats(); st.Rejected < uint64(len(bad)+1) {
		t.Fatalf("rejected count %d, want ≥ %d", st.Rejected, len(bad)+1)
	}
}

// TestClientRepairsCorruption: a chunk failing its CRC is requested again
// from its offset; a file failing its SHA-256 never reaches the inbox and is
// requested again from the start.
func TestClientRepairsCorruption(t *testing.T) {
	srv, c, dir := fakeServerSession(t)
	inbox := filepath.Join(dir, "inbox")
	a, b := []byte("first half-"), []byte("second half")
	whole := append(append([]byte(nil), a...), b...)
	h := func(chunk []byte) map[string]string {
		return map[string]string{hdrSHA256: shaHex(whole), hdrSize: strconv.Itoa(len(whole)), hdrCRC32C: crcHex(chunk)}
	}
	srv.send(burger("/f", 0, a, false, h(a)))
	corrupt := h(b)
	corrupt[hdrCRC32C] = crcHex([]byte("something else"))
	srv.send(burger("/f", int64(len(a)), b, false, corrupt))
	e := waitEvent(t, c, FileRejected)
	if !strings.Contains(e.Err.Error(), "CRC") {
		t.Fatalf("event %+v", e)
	}
	ic := srv.expect(CmdICANHAZ)
	wantCache := cachePartial + strconv.Itoa(len(a)) + ":" + shaHex(whole)
	if ic.Cache["f"] != wantCache {
		t.Fatalf("repair ICANHAZ cache %v, want f=%s", ic.Cache, wantCache)
	}
	srv.send(burger("/f", int64(len(a)), b, false, h(b)))
	srv.send(burger("/f", int64(len(whole)), nil, true, h(nil)))
	waitEvent(t, c, FileUpdated)
	if got := treeHashes(t, inbox)["f"]; got != shaHex(whole) {
		t.Fatal("repaired file differs")
	}

	// Whole-file checksum failure: content that does not match X-SHA256.
	lie := map[string]string{hdrSHA256: shaHex([]byte("other")), hdrSize: "5", hdrCRC32C: crcHex([]byte("wrong"))}
	srv.send(burger("/g", 0, []byte("wrong"), true, lie))
	e = waitEvent(t, c, FileRejected)
	if !strings.Contains(e.Err.Error(), "checksum") {
		t.Fatalf("event %+v", e)
	}
	ic = srv.expect(CmdICANHAZ)
	if _, ok := ic.Cache["g"]; ok {
		t.Fatalf("a failed file is in the cache: %v", ic.Cache)
	}
	if _, err := os.Stat(filepath.Join(inbox, "g")); !os.IsNotExist(err) {
		t.Fatalf("a file failing its checksum is in the inbox (err %v)", err)
	}
	good := []byte("other")
	srv.send(burger("/g", 0, good, true, map[string]string{hdrSHA256: shaHex(good), hdrSize: "5", hdrCRC32C: crcHex(good)}))
	if e := waitEvent(t, c, FileUpdated); e.Path != "g" {
		t.Fatalf("updated %q", e.Path)
	}
	if st := c.Stats(); st.Corrupt != 2 || st.Resyncs != 2 {
		t.Fatalf("stats %+v", st)
	}
}
