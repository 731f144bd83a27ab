// Command ingest is spendgate's worker: it consumes cost events from NATS
// JetStream into ClickHouse and serves /metrics, /healthz and /readyz.
// `ingest publish` sends synthetic events; `ingest bench` measures.
package main

import (
	"os"

	"github.com/spendgate/spendgate/internal/cli"
)

func main() {
	os.Exit(cli.Execute(rootCmd(), os.Args[1:], os.Stderr))
}
