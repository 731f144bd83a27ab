package gate_test

import (
	"bytes"
	"io"
	"os"
	"testing"
)

func mustOpen(t *testing.T, path string) io.Reader {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(data)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
