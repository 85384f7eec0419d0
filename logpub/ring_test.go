package logpub

import (
	"strconv"
	"testing"
)

// TestRingWrapsInOrder fills a ring past its count and byte bounds, across
// growth and wrap-around, and checks that it keeps the newest events,
// oldest first.
func TestRingWrapsInOrder(t *testing.T) {
	for _, tc := range []struct{ maxEvents, maxBytes, add, want int }{
		{5, 1 << 20, 13, 5},
		{40, 1 << 20, 100, 40},
		{1000, 3 * (130 + 3), 20, 3}, // the byte bound wins: 3 events of cost 133
	} {
		r := newRing(tc.maxEvents, tc.maxBytes)
		for i := 1; i <= tc.add; i++ {
			r.add(&Event{Seq: uint64(i), Service: "api", Line: []byte(strconv.Itoa(i % 10))})
		}
		var got []uint64
		r.each(func(e *Event) { got = append(got, e.Seq) })
		if len(got) != tc.want || r.n != tc.want {
			t.Fatalf("%+v: kept %d (n %d), want %d", tc, len(got), r.n, tc.want)
		}
		for i, s := range got {
			if s != uint64(tc.add-tc.want+1+i) {
				t.Fatalf("%+v: order %v", tc, got)
			}
		}
		if o := r.oldest(); o == nil || o.Seq != got[0] {
			t.Fatalf("%+v: oldest %v", tc, o)
		}
	}
}
