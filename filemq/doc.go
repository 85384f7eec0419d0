// Package filemq implements FILEMQ (RFC 35, version 2): a server that
// publishes directory trees and clients that subscribe to paths and receive
// the files into an inbox, with credit-based flow control.
//
// The wire format follows the reference implementation (zeromq/filemq).
package filemq
