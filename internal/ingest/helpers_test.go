package ingest_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func readManifest(t testing.TB) map[string]manifestEntry {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]manifestEntry{}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if len(m) < 30 {
		t.Fatalf("manifest has %d invalid events, want >= 30", len(m))
	}
	return m
}

func newRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

func mustGather(t testing.TB, g prometheus.Gatherer) []*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}
