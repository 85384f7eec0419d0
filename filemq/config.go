package filemq

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/curve"
)

// ServerConfig configures a Server. Start from DefaultServerConfig.
type ServerConfig struct {
	// Endpoint is where the ROUTER binds. Port 0 picks a free port; the
	// bound endpoint is then given by Server.Endpoint.
	Endpoint string
	// ChunkSize is the most file bytes one CHEEZBURGER carries.
	ChunkSize int
	// PollInterval is how often published trees are scanned for changes.
	PollInterval time.Duration
	// StableAge is how long a file must stay unmodified (same size and
	// mtime over two scans, and mtime at least this old) before a scan
	// publishes it. Announce publishes at once.
	StableAge time.Duration
	// ClientTimeout drops a client that has sent nothing for this long.
	ClientTimeout time.Duration
	// Map, when set, decides which files of a published tree are published
	// and under which relative virtual path: it gets the file's path
	// relative to the published directory (slash-separated) and returns the
	// path to publish it under, relative to the alias, or false to skip the
	// file. logd uses it to publish only rotated archives, by service.
	Map func(rel string) (string, bool)
	// SendTimeout is how long one socket write may block before the server
	// rebinds its socket (see Server for why).
	SendTimeout time.Duration
	// Keys, when set, closes the server with CURVE: a client must speak
	// CURVE, know the server's public key, and prove a key Authorize
	// admits. NULL clients are refused (no downgrade). Nil: an open server.
	Keys *curve.KeyPair
	// Authorize admits a client's public key (e.g. a curve.AllowList's
	// Authorize). Required with Keys.
	Authorize curve.AuthorizeFunc
	// Logger receives the server's diagnostics.
	Logger zerolog.Logger
}

// DefaultServerConfig returns working defaults: loopback on a free port,
// 1 MiB chunks (as the reference server), 1 s polling, 2 s stability,
// 30 s client timeout, 10 s send timeout.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		Endpoint:      "tcp://127.0.0.1:0",
		ChunkSize:     1 << 20,
		PollInterval:  time.Second,
		StableAge:     2 * time.Second,
		ClientTimeout: 30 * time.Second,
		SendTimeout:   10 * time.Second,
		Logger:        zerolog.Nop(),
	}
}

// ClientConfig configures a Client. Start from DefaultClientConfig.
type ClientConfig struct {
	// Inbox is the directory that receives the files. It is created if
	// missing. Its subdirectory .filemq holds partial files and the manifest.
	Inbox string
	// Credit is the window of file bytes the client lets the server have in
	// flight. It bounds the memory both ends use for a transfer.
	Credit int64
	// Heartbeat is how often the client sends HUGZ when the server is quiet.
	Heartbeat time.Duration
	// Timeout ends a session whose server has sent nothing for this long;
	// the client then reconnects and resumes.
	Timeout time.Duration
	// MaxFileSize refuses files the server declares (or sends) larger than this.
	MaxFileSize int64
	// MaxRetries is how many times one version of a file failing its
	// checksum is requested again before the client gives up on it (until
	// the server publishes another version or the client restarts).
	MaxRetries int
	// KeepDeleted keeps inbox files whose source was deleted on the server
	// (archive collection wants this); false mirrors deletes as RFC 35 does.
	KeepDeleted bool
	// Name identifies the client in the server's Stats (sent as the
	// ICANHAZ option X-CLIENT).
	Name string
	// Keys, when set, makes the client speak CURVE with this key pair to a
	// server whose public key is ServerKey (on a mesh, the server node's
	// X-PUBLICKEY header). A NULL server, or one that does not hold
	// ServerKey's secret, is refused. Nil: a NULL client.
	Keys *curve.KeyPair
	// ServerKey is the server's public key. Required with Keys.
	ServerKey curve.PublicKey
	// Logger receives the client's diagnostics.
	Logger zerolog.Logger
}

// DefaultClientConfig returns working defaults for an inbox: 8 MiB credit,
// 1 s heartbeat, 5 s timeout, 64 GiB largest file, 3 retries.
func DefaultClientConfig(inbox string) ClientConfig {
	return ClientConfig{
		Inbox:       inbox,
		Credit:      8 << 20,
		Heartbeat:   time.Second,
		Timeout:     5 * time.Second,
		MaxFileSize: 64 << 30,
		MaxRetries:  3,
		Logger:      zerolog.Nop(),
	}
}

// Extension headers and options; see doc.go.
const (
	optResync    = "RESYNC"
	optClient    = "X-CLIENT"
	hdrSHA256    = "X-SHA256"
	hdrSize      = "X-SIZE"
	hdrCRC32C    = "X-CRC32C"
	cacheFull    = "sha256:"
	cachePartial = "partial:"
)
