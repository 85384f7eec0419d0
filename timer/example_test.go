package timer_test

import (
	"context"
	"fmt"
	"time"

	"github.com/logmesh/logmesh/timer"
)

// NextAligned gives instants on the wall-clock grid, the same on every host:
// log rotation uses it to rotate on the hour everywhere.
func ExampleNextAligned() {
	t := time.Date(2026, 11, 27, 5, 42, 17, 0, time.UTC)
	fmt.Println(timer.NextAligned(t, time.Hour).UTC().Format(time.TimeOnly))
	fmt.Println(timer.NextAligned(t, 15*time.Minute).UTC().Format(time.TimeOnly))
	n := timer.TickNumber(t, 100*time.Millisecond)
	fmt.Println(n, timer.TickTime(n, 100*time.Millisecond).Equal(t))
	// Output:
	// 06:00:00
	// 05:45:00
	// 17957581370 true
}

// A client of a service: ticks of 100 ms and a cluster-wide cron schedule.
func ExampleClient() {
	svc, err := timer.NewService(timer.DefaultConfig())
	if err != nil {
		panic(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		panic(err)
	}
	defer svc.Close()

	c, err := timer.NewClient(timer.ClientConfig{Endpoint: svc.Endpoint()})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	ticks, err := c.Ticks(ctx, 100*time.Millisecond)
	if err != nil {
		panic(err)
	}
	t := <-ticks
	fmt.Println(t.At.Equal(timer.TickTime(t.N, t.Period)))

	err = c.Schedule(ctx, timer.Spec{Name: "report", Cron: "0 0 6 * * MON", TZ: "Europe/Paris", Scope: timer.ScopeCluster})
	fmt.Println(err)
	// Output:
	// true
	// <nil>
}
