package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/spendgate/spendgate/internal/gate"
	"github.com/spendgate/spendgate/internal/olap"
)

// JSON writes v indented, with a final newline.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteFileAtomic writes what fill produces to path through a temporary file
// in the same folder, synced and renamed into place: a reader (node_exporter's
// textfile collector, a cron job) sees the old file or the new one, never a
// part, and a failure leaves no partial file.
func WriteFileAtomic(path string, fill func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = fill(tmp); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

// ErrNoOutput is returned for an empty --output.
var ErrNoOutput = errors.New("--output needs a file name, or - for standard output")

// Prometheus writes the budget and gate gauges, and spend per service over
// today and this month, in the Prometheus text format.
func Prometheus(w io.Writer, s Summary, st gate.State, daily, monthly []olap.ServiceSpend) error {
	reg := prometheus.NewRegistry()
	g := gate.NewBudgetGauges(reg)
	g.SetState(st, s.AutoState)
	g.SetBudgets(s.statuses)
	g.SetServices(gate.BudgetDaily, daily)
	g.SetServices(gate.BudgetMonthly, monthly)
	mfs, err := reg.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}
