package filemq

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzInboxChunk feeds arbitrary CHEEZBURGERs to an inbox: it must never
// panic, and never create anything outside the inbox directory.
func FuzzInboxChunk(f *testing.F) {
	data := []byte("payload")
	f.Add("/a/b", uint64(0), true, "7", shaHex(data), crcHex(data), data, uint8(OpCreate))
	f.Add("/../x", uint64(0), true, "7", shaHex(data), crcHex(data), data, uint8(OpCreate))
	f.Add("/.filemq/manifest", uint64(0), false, "", "", "", data, uint8(OpCreate))
	f.Add("/a", uint64(3), false, "99999999999999999999", "zz", "1", data, uint8(OpDelete))
	f.Add("//a//../../b", uint64(1<<63), true, "-1", "", "", []byte{}, uint8(7))
	parent := f.TempDir()
	dir := filepath.Join(parent, "inbox")
	cfg := DefaultClientConfig(dir)
	cfg.MaxFileSize = 1 << 20
	in, err := openInbox(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(in.close)
	c := &Client{cfg: cfg, in: in, subs: []string{"/"}}
	f.Fuzz(func(t *testing.T, name string, off uint64, eof bool, size, sha, crc string, chunk []byte, op uint8) {
		m := Msg{Cmd: CmdCHEEZBURGER, Operation: op, Filename: name, Offset: off, EOF: eof, Chunk: chunk,
			Headers: map[string]string{}}
		// An empty value stands for an absent header (a reference server sends none).
		for k, v := range map[string]string{hdrSize: size, hdrSHA256: sha, hdrCRC32C: crc} {
			if v != "" {
				m.Headers[k] = v
			}
		}
		if rel, ok := c.relFor(m.Filename); ok {
			in.chunk(&m, rel)
		}
		ents, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 || ents[0].Name() != "inbox" {
			t.Fatalf("%q wrote outside the inbox: %v", name, ents)
		}
	})
}
