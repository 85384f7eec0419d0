package curve

import (
	"fmt"
	"net"
	"sync"
)

// AllowList is the set of client public keys a server admits: CURVE's
// allow-list, as czmq's zcertstore with zauth. Safe for concurrent use.
type AllowList struct {
	mu   sync.RWMutex
	keys map[PublicKey]struct{}
}

// NewAllowList returns an allow-list holding keys.
func NewAllowList(keys ...PublicKey) *AllowList {
	a := &AllowList{keys: make(map[PublicKey]struct{}, len(keys))}
	for _, k := range keys {
		a.keys[k] = struct{}{}
	}
	return a
}

// Add admits key.
func (a *AllowList) Add(key PublicKey) {
	a.mu.Lock()
	a.keys[key] = struct{}{}
	a.mu.Unlock()
}

// Remove stops admitting key; connections already made stay.
func (a *AllowList) Remove(key PublicKey) {
	a.mu.Lock()
	delete(a.keys, key)
	a.mu.Unlock()
}

// Contains reports whether key is admitted.
func (a *AllowList) Contains(key PublicKey) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	_, ok := a.keys[key]
	return ok
}

// Keys returns the admitted keys, in no particular order.
func (a *AllowList) Keys() []PublicKey {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]PublicKey, 0, len(a.keys))
	for k := range a.keys {
		out = append(out, k)
	}
	return out
}

// Authorize is an AuthorizeFunc that admits the keys of the list.
func (a *AllowList) Authorize(key PublicKey, remote net.Addr) error {
	if !a.Contains(key) {
		return fmt.Errorf("key %s from %v is not in the allow-list", key, remote)
	}
	return nil
}
