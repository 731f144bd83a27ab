package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "clickhouse at 127.0.0.1:9000: connection refused", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	}))
	defer srv.Close()

	if code := run([]string{srv.URL + "/readyz"}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("ready server: exit %d, want 0", code)
	}
	down.Store(true)
	var stderr strings.Builder
	if code := run([]string{srv.URL + "/readyz"}, io.Discard, &stderr); code != 1 {
		t.Fatalf("unready server: exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "503") || !strings.Contains(stderr.String(), "connection refused") {
		t.Errorf("stderr %q does not say why", stderr.String())
	}
	srv.Close()
	if code := run([]string{"-timeout", "500ms", srv.URL + "/readyz"}, io.Discard, io.Discard); code != 1 {
		t.Fatalf("closed server: exit %d, want 1", code)
	}
	if code := run([]string{"-bogus"}, io.Discard, io.Discard); code != 2 {
		t.Fatalf("bad flag: exit %d, want 2", code)
	}
}
