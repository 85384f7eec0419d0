//go:build race

package harmony

// The race detector slows the per-byte JSON scan about thirty times; the
// full-size runs are for plain `go test`.
const raceEnabled = true
