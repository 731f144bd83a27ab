package main_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spendgate/spendgate/internal/events"
	"github.com/spendgate/spendgate/internal/ingest"
	"github.com/spendgate/spendgate/internal/loadgen"
	"github.com/spendgate/spendgate/internal/olap"
	"github.com/spendgate/spendgate/internal/period"
	"github.com/spendgate/spendgate/internal/testenv"
)

var binary string

// TestMain builds the real ingest binary once; the tests run it as a process.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ingest-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "ingest")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a running ingest process.
type proc struct {
	cmd     *exec.Cmd
	metrics string
	lines   chan string
	done    chan error
}

func startIngest(t testing.TB, ns *server.Server, db string, env ...string) *proc {
	t.Helper()
	p := &proc{metrics: freeAddr(t), lines: make(chan string, 1024), done: make(chan error, 1)}
	p.cmd = exec.Command(binary, "--nats-url", ns.ClientURL(), "--clickhouse-addr", testenv.ClickHouseAddr(),
		"--clickhouse-database", db, "--metrics-listen", p.metrics, "--data-dir", t.TempDir())
	p.cmd.Env = append(os.Environ(), "SPENDGATE_INGEST_BATCH_SIZE=500", "SPENDGATE_INGEST_ACK_WAIT=1s",
		"SPENDGATE_INGEST_MAX_ACK_PENDING=2000")
	p.cmd.Env = append(p.cmd.Env, env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
		}
	})
	return p
}

// waitLine waits for a stderr line containing s.
func (p *proc) waitLine(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l := <-p.lines:
			if strings.Contains(l, s) {
				return
			}
		case err := <-p.done:
			t.Fatalf("ingest exited (%v) before printing %q", err, s)
		case <-deadline:
			t.Fatalf("no %q from ingest after %s", s, timeout)
		}
	}
}

// metric scrapes one sample of the process's /metrics.
func (p *proc) metric(t testing.TB, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in /metrics", series)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func rawTotal(t testing.TB, ch *olap.Client) olap.Spend {
	t.Helper()
	s, err := ch.RawTotal(context.Background(), period.Range{Start: time.Unix(0, 0), End: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func waitDrained(t testing.TB, js jetstream.JetStream, consumer string) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, "consumer drained", func() bool {
		c, err := js.Consumer(context.Background(), events.StreamEvents, consumer)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
}

// A real ingest process is SIGKILLed after its third ClickHouse insert and
// before the acks; a restarted one finds that batch stored and stores
// everything else: exact totals, nothing lost, nothing twice.
func TestKillBetweenInsertAndAck(t *testing.T) {
	ns, js := testenv.JetStream(t)
	ch := testenv.ClickHouse(t)
	want, err := loadgen.Publish(context.Background(), js, loadgen.NewGenerator(42, "kill-"), loadgen.Options{Count: 5000})
	if err != nil {
		t.Fatal(err)
	}

	p := startIngest(t, ns, ch.Database(), ingest.FaultPauseEnv+"=3")
	p.waitLine(t, ingest.FaultPausedLine, 60*time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	before := rawTotal(t, ch)
	// The third insert landed and was not acked; the second inserter may
	// have stored and acked further batches meanwhile.
	if before.Events < 1500 || before.Events%500 != 0 || before.Events >= uint64(want.Published) {
		t.Fatalf("%d events stored when killed after the 3rd insert of 500, want 1500 or a few batches more", before.Events)
	}

	p2 := startIngest(t, ns, ch.Database())
	waitDrained(t, js, "spendgate-ingest")
	got := rawTotal(t, ch)
	if got.Events != uint64(want.Published) || !got.CostUSD.Equal(want.Total) {
		t.Fatalf("after restart: %d events summing %s, want %d summing %s", got.Events, got.CostUSD.StringFixed(9), want.Published, want.Total.StringFixed(9))
	}
	// At least the killed batch was found stored; on a loaded machine a 1s
	// ack wait can redeliver more, which are found stored too.
	if dups := p2.metric(t, `spendgate_ingest_events_total{result="duplicate"}`); dups < 500 {
		t.Fatalf("restarted worker found %v stored duplicates, want >= the 500 of the killed batch", dups)
	}
	_ = p2.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p2.done:
		if err != nil {
			t.Fatalf("ingest after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("ingest did not exit within 20s of SIGTERM")
	}
}

func TestBadFlagExitsTwo(t *testing.T) {
	out, err := exec.Command(binary, "--no-such-flag").CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit = %v, want 2", err)
	}
	if !strings.Contains(string(out), "unknown flag: --no-such-flag") || !strings.Contains(string(out), "Usage:") {
		t.Fatalf("output lacks the error and usage:\n%s", out)
	}
}

func TestUnreachableClickHouseIsNamed(t *testing.T) {
	ns := testenv.NATS(t)
	dead := freeAddr(t)
	cmd := exec.Command(binary, "--nats-url", ns.ClientURL(), "--clickhouse-addr", dead,
		"--metrics-listen", freeAddr(t), "--data-dir", t.TempDir())
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit = %v, want 1; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "clickhouse at "+dead) {
		t.Fatalf("error does not name clickhouse at %s:\n%s", dead, out)
	}
}

func TestUnreachableNATSIsNamed(t *testing.T) {
	dead := freeAddr(t)
	out, err := exec.Command(binary, "--nats-url", "nats://"+dead, "--metrics-listen", freeAddr(t)).CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit = %v, want 1; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "nats at nats://"+dead) {
		t.Fatalf("error does not name nats at %s:\n%s", dead, out)
	}
}
