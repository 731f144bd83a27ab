// Package examples_test checks the publisher examples in other languages
// (the Go one, examples/go, has its own test): each is checked for syntax
// with its interpreter; the shell one runs against a stand-in `nats` CLI
// that records what it would send; and each one also runs for real against
// a JetStream server with spendgate's streams when its client library (or
// the nats CLI) is installed. A missing interpreter fails the test when CI
// is set and skips it otherwise.
package examples_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spendgate/spendgate/internal/events"
	"github.com/spendgate/spendgate/internal/testenv"
)

func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s is needed to check the examples: %v", name, err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// command runs name args in dir with extra environment and returns its
// combined output and exit code (-1 when it could not run or timed out).
func command(t testing.TB, dir string, env []string, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ctx.Err() == nil {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), 0
}

func mustRun(t testing.TB, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, code := command(t, dir, env, name, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d\n%s", name, strings.Join(args, " "), code, out)
	}
	return out
}

// jetStream starts a NATS server with spendgate's streams, as ingest would
// have created them.
func jetStream(t *testing.T) (string, jetstream.JetStream) {
	t.Helper()
	ns, js := testenv.JetStream(t)
	return ns.ClientURL(), js
}

// storedEvents reads every message of COST_EVENTS and checks each is a
// valid cost event on its subject with Nats-Msg-Id equal to its event_id.
func storedEvents(t *testing.T, js jetstream.JetStream) []events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, events.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, events.StreamEvents, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	for range info.State.Msgs {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		ev, _, err := events.Decode(msg.Data())
		if err != nil {
			t.Fatalf("spendgate rejects %s: %v", msg.Data(), err)
		}
		if id := msg.Headers().Get(jetstream.MsgIDHeader); id != ev.EventID {
			t.Errorf("Nats-Msg-Id %q, event_id %q", id, ev.EventID)
		}
		if msg.Subject() != ev.Subject() {
			t.Errorf("published on %s, want %s", msg.Subject(), ev.Subject())
		}
		out = append(out, ev)
	}
	return out
}

// runPublisher runs a demo publisher twice with the same ids against a real
// server: 20 events stored, then 20 duplicates dropped.
func runPublisher(t *testing.T, dir, bin string, script string) {
	url, js := jetStream(t)
	args := []string{script, "--url", url, "--count", "20", "--id-prefix", "demo-"}
	line := regexp.MustCompile(`published 20 events totalling [0-9]+\.[0-9]+ USD: (\d+) stored, (\d+) duplicates`)
	out := mustRun(t, dir, nil, bin, args...)
	if m := line.FindStringSubmatch(out); m == nil || m[1] != "20" || m[2] != "0" {
		t.Fatalf("first run: %q", out)
	}
	evs := storedEvents(t, js)
	if len(evs) != 20 {
		t.Fatalf("COST_EVENTS holds %d events, want 20", len(evs))
	}
	for _, ev := range evs {
		if !strings.HasPrefix(ev.EventID, "demo-") || ev.Units == 0 || ev.Unit == "" || time.Since(ev.TS) > time.Minute {
			t.Errorf("event %+v", ev)
		}
	}
	out = mustRun(t, dir, nil, bin, args...)
	if m := line.FindStringSubmatch(out); m == nil || m[1] != "0" || m[2] != "20" {
		t.Fatalf("second run with the same ids: %q", out)
	}
}

func TestPythonExample(t *testing.T) {
	python := tool(t, "python3")
	dir := "python"
	mustRun(t, dir, []string{"PYTHONPYCACHEPREFIX=" + t.TempDir()}, python, "-m", "py_compile", "publish.py")
	if _, code := command(t, dir, nil, python, "-c", "import nats.js"); code != 0 {
		t.Log("nats-py is not installed (pip install nats-py): syntax checked only")
		return
	}
	runPublisher(t, dir, python, "publish.py")
}

func TestNodeExample(t *testing.T) {
	node := tool(t, "node")
	dir := "node"
	mustRun(t, dir, nil, node, "--check", "publish.mjs")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "nats", "package.json")); err != nil {
		t.Log("nats.js is not installed (npm install in examples/node): syntax checked only")
		return
	}
	runPublisher(t, dir, node, "publish.mjs")
}

// The shell example against a stand-in `nats` that prints its arguments:
// the event it builds passes spendgate's decoder and goes out with
// --jetstream and Nats-Msg-Id; bad arguments are refused before any publish.
func TestShellExample(t *testing.T) {
	bash := tool(t, "bash")
	dir := "shell"
	mustRun(t, dir, nil, bash, "-n", "publish.sh")

	fake := t.TempDir()
	script := "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done\n"
	if err := os.WriteFile(filepath.Join(fake, "nats"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + fake + string(os.PathListSeparator) + os.Getenv("PATH"), "EVENT_ID=shell-1"}
	out := mustRun(t, dir, env, bash, "publish.sh", "openai", "chat_completion", "0.0125", "1250", "tokens",
		"business_id=b-42", `note=say "hi" and \ more`)
	args := strings.Split(strings.TrimSuffix(out, "\x00"), "\x00")
	if len(args) != 6 || args[0] != "pub" || args[1] != "--jetstream" || args[2] != "-H" ||
		args[3] != "Nats-Msg-Id:shell-1" || args[4] != "costs.events.openai" {
		t.Fatalf("nats called with %q", args)
	}
	ev, _, err := events.Decode([]byte(args[5]))
	if err != nil {
		t.Fatalf("spendgate rejects %s: %v", args[5], err)
	}
	if ev.EventID != "shell-1" || ev.Service != "openai" || ev.Operation != "chat_completion" ||
		ev.CostUSD.String() != "0.0125" || ev.Units != 1250 || ev.Unit != "tokens" || time.Since(ev.TS) > time.Minute ||
		strings.Join(ev.AttrKeys, ",") != "business_id,note" || ev.AttrValues[1] != `say "hi" and \ more` {
		t.Errorf("decoded %+v", ev)
	}

	// Without EVENT_ID, a fresh UUID each time.
	out = mustRun(t, dir, env[:1], bash, "publish.sh", "sendgrid", "send_email", "0.001")
	args = strings.Split(strings.TrimSuffix(out, "\x00"), "\x00")
	if ev, _, err = events.Decode([]byte(args[len(args)-1])); err != nil || len(ev.EventID) != 36 || args[3] != "Nats-Msg-Id:"+ev.EventID {
		t.Errorf("no EVENT_ID: %q (%v)", args, err)
	}

	for _, bad := range [][]string{
		{"openai", "chat_completion"},
		{"OpenAI", "chat_completion", "0.01"},
		{"openai", "chat completion", "0.01"},
		{"openai", "chat_completion", "1e-3"},
		{"openai", "chat_completion", "0.0000000001"},
		{"openai", "chat_completion", "0.01", "-5", "tokens"},
		{"openai", "chat_completion", "0.01", "5", "tokens", "novalue"},
		{"openai", "chat_completion", "0.01", "5", "tokens", "note=a\tb"},
	} {
		out, code := command(t, dir, env, bash, append([]string{"publish.sh"}, bad...)...)
		if code != 2 || strings.Contains(out, "pub\x00") {
			t.Errorf("publish.sh %q: exit %d, output %q; want exit 2 before publishing", bad, code, out)
		}
	}

	// With the real CLI, for real.
	if _, err := exec.LookPath("nats"); err == nil {
		url, js := jetStream(t)
		mustRun(t, dir, []string{"NATS_URL=" + url, "EVENT_ID=shell-live-1"}, bash, "publish.sh", "openai", "chat_completion", "0.0125")
		mustRun(t, dir, []string{"NATS_URL=" + url, "EVENT_ID=shell-live-1"}, bash, "publish.sh", "openai", "chat_completion", "0.0125")
		if evs := storedEvents(t, js); len(evs) != 1 || evs[0].EventID != "shell-live-1" {
			t.Errorf("COST_EVENTS holds %+v, want shell-live-1 once", evs)
		}
	} else {
		t.Log("the nats CLI is not installed: checked against a stand-in")
	}
}
