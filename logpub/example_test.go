package logpub_test

import (
	"context"
	"fmt"
	"time"

	"github.com/logmesh/logmesh/logpub"
	"github.com/rs/zerolog"
)

// An app logs with zerolog through a Writer; a Hub (as logd runs it)
// receives, and a subscriber reads the events at warn and above.
func Example() {
	cfg := logpub.DefaultHubConfig()
	cfg.WriterEndpoint = "tcp://127.0.0.1:0" // tests: no fixed port
	hub, _ := logpub.NewHub(cfg)
	hub.Start(context.Background())
	defer hub.Close()

	st, _ := logpub.Subscribe(context.Background(), hub.PubEndpoint(),
		logpub.SubscribeOptions{Follow: true, Since: time.Now().Add(-time.Minute), Filter: logpub.Filter{MinLevel: zerolog.WarnLevel}})
	defer st.Close()

	w := logpub.NewWriter(logpub.WriterOptions{Endpoint: hub.WriterEndpoint(), Service: "api"})
	log := zerolog.New(w)
	log.Info().Msg("not shown")
	log.Warn().Str("user", "ada").Msg("disk almost full")
	w.Close()

	e, _ := st.Next()
	fmt.Printf("%s %s", e.Service, e.Line)
	// Output: api {"level":"warn","user":"ada","message":"disk almost full"}
}
