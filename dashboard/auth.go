package dashboard

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// tokenCookie carries the token for the page's own requests: EventSource
// cannot set an Authorization header.
const tokenCookie = "logmesh_token"

// isLoopbackAddr reports whether a listen address (host:port) binds only
// loopback. An empty host ("" or ":7070") binds every interface.
func isLoopbackAddr(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("dashboard: listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

func generateToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("dashboard: generate token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// tokenOK compares in constant time, so response timing says nothing about
// how much of a guess was right.
func (s *Server) tokenOK(got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1
}

// authorize lets a request through when no token is needed, or when it
// carries the token in an Authorization: Bearer header or the page's
// cookie. Opening the page with ?token= sets the cookie and redirects to
// the same page without the token in its URL.
func (s *Server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkOrigin(r, s.token == ""); err != nil {
			s.forbidden.Add(1)
			http.Error(w, "dashboard: "+err.Error(), http.StatusForbidden)
			return
		}
		if s.token == "" {
			next.ServeHTTP(w, r)
			return
		}
		if auth := r.Header.Get("Authorization"); auth != "" {
			if bearer, ok := strings.CutPrefix(auth, "Bearer "); ok && s.tokenOK(strings.TrimSpace(bearer)) {
				next.ServeHTTP(w, r)
				return
			}
		} else if c, err := r.Cookie(tokenCookie); err == nil && s.tokenOK(c.Value) {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodGet && r.URL.Path == "/" && s.tokenOK(r.URL.Query().Get("token")) {
			http.SetCookie(w, &http.Cookie{
				Name: tokenCookie, Value: s.token, Path: "/",
				HttpOnly: true, SameSite: http.SameSiteStrictMode,
			})
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		s.unauthorized.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="logmesh"`)
		http.Error(w, "dashboard: a bearer token is required (Authorization: Bearer <token>)", http.StatusUnauthorized)
	})
}

// checkOrigin guards a tokenless (loopback) dashboard against web pages the
// user visits: a cross-site POST carries a foreign Origin, and a DNS
// rebinding attack a foreign Host. Tools such as curl send no Origin.
func checkOrigin(r *http.Request, tokenless bool) error {
	if tokenless {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		ip := net.ParseIP(strings.Trim(host, "[]"))
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("host %q refused: a dashboard without token answers only to loopback names", r.Host)
		}
	}
	if origin := r.Header.Get("Origin"); origin != "" && r.Method != http.MethodGet && r.Method != http.MethodHead {
		u, err := url.Parse(origin)
		if err != nil || u.Host != r.Host {
			return fmt.Errorf("cross-origin %s from %q refused", r.Method, origin)
		}
	}
	return nil
}
