package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/logmesh/logmesh/dashboard"
	"github.com/logmesh/logmesh/harmony"
)

// harmonyBatches holds the batches that `logd reprocess` runs report to
// this logd (POST /harmony/batches), for the admin API and the dashboard:
// it is a dashboard.BatchesSource.
var harmonyBatches = &batchTable{}

const keptBatches = 20

type batchTable struct {
	mu   sync.Mutex
	list []dashboard.Batch
}

// Batches returns the known batches, oldest first.
func (b *batchTable) Batches() []dashboard.Batch {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]dashboard.Batch(nil), b.list...)
}

func (b *batchTable) put(x dashboard.Batch) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.list {
		if b.list[i].ID == x.ID {
			b.list[i] = x
			return
		}
	}
	b.list = append(b.list, x)
	if len(b.list) > keptBatches {
		b.list = b.list[len(b.list)-keptBatches:]
	}
}

func (b *batchTable) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /harmony/batches", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, b.Batches())
	})
	mux.HandleFunc("POST /harmony/batches", func(w http.ResponseWriter, r *http.Request) {
		var x dashboard.Batch
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&x); err != nil || x.ID == "" || len(x.ID) > 64 {
			http.Error(w, "want a batch as JSON with an id", http.StatusBadRequest)
			return
		}
		b.put(x)
		w.WriteHeader(http.StatusNoContent)
	})
}

// batchReporter sends a batch's progress to the local logd, at most once a
// second and once at the end; a logd that does not answer is left alone.
type batchReporter struct {
	admin   *adminClient
	id      string
	started time.Time
	last    time.Time
	off     bool
}

func newBatchReporter(admin *adminClient, id harmony.BatchID) *batchReporter {
	return &batchReporter{admin: admin, id: id.String(), started: time.Now()}
}

func (r *batchReporter) progress(p harmony.Progress) {
	if r.off || (!p.Finished && time.Since(r.last) < time.Second) {
		return
	}
	r.last = time.Now()
	x := dashboard.Batch{ID: r.id, Tasks: p.N, Done: p.Done, Resent: int(p.Resent), Workers: len(p.InFlight), Started: r.started}
	if p.Finished {
		x.Ended = time.Now()
	}
	r.post(x)
}

func (r *batchReporter) failed(err error) {
	if !r.off {
		r.post(dashboard.Batch{ID: r.id, Started: r.started, Ended: time.Now(), Error: err.Error()})
	}
}

func (r *batchReporter) post(x dashboard.Batch) {
	body, _ := json.Marshal(x)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := r.admin.do(ctx, http.MethodPost, "/harmony/batches", strings.NewReader(string(body)), nil); err != nil {
		r.off = true
	}
}
