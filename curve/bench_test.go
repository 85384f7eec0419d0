package curve

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
)

const benchMsgSize = 200

// benchPair returns a connected DEALER and ROUTER, NULL or CURVE.
func benchPair(b *testing.B, ctx context.Context, useCurve bool) (zmq4.Socket, zmq4.Socket) {
	b.Helper()
	quiet := zmq4.WithLogger(log.New(io.Discard, "", 0))
	var ropts, dopts []zmq4.Option
	scheme := "tcp"
	if useCurve {
		srv, cli := mustKeys(b), mustKeys(b)
		ropts = append(ropts, zmq4.WithSecurity(NewServer(srv, NewAllowList(cli.Public).Authorize)))
		dopts = append(dopts, zmq4.WithSecurity(NewClient(cli, srv.Public)))
		scheme = Scheme
	}
	router := zmq4.NewRouter(ctx, append(ropts, quiet)...)
	b.Cleanup(func() { _ = router.Close() })
	if err := router.Listen(scheme + "://127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	dealer := zmq4.NewDealer(ctx, append(dopts, quiet, zmq4.WithID(zmq4.SocketIdentity("bench")))...)
	b.Cleanup(func() { _ = dealer.Close() })
	if err := dealer.Dial(scheme + "://" + router.Addr().String()); err != nil {
		b.Fatal(err)
	}
	return dealer, router
}

// pump sends n messages from dealer and receives them on router.
func pump(b *testing.B, dealer, router zmq4.Socket, n int) time.Duration {
	b.Helper()
	msg := zmq4.NewMsg(make([]byte, benchMsgSize))
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := dealer.Send(msg); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := 0; i < n; i++ {
		m, err := router.Recv()
		if err != nil {
			b.Fatal(err)
		}
		if len(m.Frames) != 2 || len(m.Frames[1]) != benchMsgSize {
			b.Fatalf("got %d frames", len(m.Frames))
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkDealerRouterCurveVsNull sends b.N 200-byte messages DEALER ->
// ROUTER over NULL, then over CURVE, in the same run, and reports both
// rates and their ratio.
func BenchmarkDealerRouterCurveVsNull(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nd, nr := benchPair(b, ctx, false)
	cd, cr := benchPair(b, ctx, true)
	pump(b, nd, nr, 100) // warm up both
	pump(b, cd, cr, 100)
	b.ResetTimer()
	tNull := pump(b, nd, nr, b.N)
	tCurve := pump(b, cd, cr, b.N)
	b.StopTimer()
	null := float64(b.N) / tNull.Seconds()
	curve := float64(b.N) / tCurve.Seconds()
	b.ReportMetric(null, "null-msg/s")
	b.ReportMetric(curve, "curve-msg/s")
	b.ReportMetric(curve/null, "curve/null")
}

// BenchmarkUpgradeCurveVsPlain streams b.N 200-byte frames through a
// bufio.Writer (as the mesh does) over plain TCP, then over an upgraded
// CURVE Conn, and reports both rates and their ratio.
func BenchmarkUpgradeCurveVsPlain(b *testing.B) {
	ctx := context.Background()
	plainA, plainB := benchTCPPair(b)
	srv, cli := mustKeys(b), mustKeys(b)
	ca, cb := benchTCPPair(b)
	done := make(chan *Conn, 1)
	go func() {
		c, err := NewServer(srv, nil).Upgrade(ctx, cb, nil)
		if err != nil {
			b.Error(err)
		}
		done <- c
	}()
	curveA, err := NewClient(cli, srv.Public).Upgrade(ctx, ca, nil)
	if err != nil {
		b.Fatal(err)
	}
	curveB := <-done
	if curveB == nil {
		b.FailNow()
	}
	b.ResetTimer()
	tPlain := stream(b, plainA, plainB, b.N)
	tCurve := stream(b, curveA, curveB, b.N)
	b.StopTimer()
	plain := float64(b.N) / tPlain.Seconds()
	curve := float64(b.N) / tCurve.Seconds()
	b.ReportMetric(plain, "plain-msg/s")
	b.ReportMetric(curve, "curve-msg/s")
	b.ReportMetric(curve/plain, "curve/plain")
}

func stream(b *testing.B, w, r net.Conn, n int) time.Duration {
	b.Helper()
	frame := append(appendFrameHeader(nil, 0, benchMsgSize), make([]byte, benchMsgSize)...)
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(w, 64<<10)
		for i := 0; i < n; i++ {
			if _, err := bw.Write(frame); err != nil {
				errc <- err
				return
			}
		}
		errc <- bw.Flush()
	}()
	br := bufio.NewReaderSize(r, 64<<10)
	buf := make([]byte, benchMsgSize)
	for i := 0; i < n; i++ {
		_, body, err := readFrame(br, buf, 1<<20)
		if err != nil || len(body) != benchMsgSize {
			b.Fatalf("frame %d: %v", i, err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

func benchTCPPair(b *testing.B) (net.Conn, net.Conn) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = a.Close(); _ = c.Close() })
	return a, c
}

// BenchmarkSessionSealOpen is the MESSAGE layer alone: seal then open one
// frame of 200 bytes (a log line) and of 64 KiB (a batch of them).
func BenchmarkSessionSealOpen(b *testing.B) {
	for _, size := range []int{benchMsgSize, 64 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			cli, srv := newPair(b, 99).run(b)
			plain := make([]byte, 1+size)
			var out, back []byte
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				var err error
				if out, err = cli.seal(out[:0], plain); err != nil {
					b.Fatal(err)
				}
				if back, err = srv.open(back[:0], out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
