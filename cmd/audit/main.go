// Command audit is spendgate's operator CLI: budget summary, cost
// breakdowns, scaling gate control and exports. Exit codes: 0 success, 1 a
// failed operation, 2 bad usage, 3 `gate check`: blocked.
package main

import (
	"os"

	"github.com/spendgate/spendgate/internal/cli"
)

func main() {
	os.Exit(cli.Execute(rootCmd(&app{}), os.Args[1:], os.Stderr))
}
