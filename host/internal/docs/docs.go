// Package docs renders the configuration reference from the code that
// reads the configuration, so docs/CONFIGURATION.md cannot drift: a test
// compares the file with what this package renders.
package docs

import (
	"fmt"
	"strings"

	"github.com/labelbackup/label-backup/host/internal/config"
	"github.com/labelbackup/label-backup/host/internal/labels"
)

// Configuration renders docs/CONFIGURATION.md.
func Configuration() string {
	var b strings.Builder
	b.WriteString(`# Configuration reference

Generated from the code (` + "`host/internal/docs`" + `); a test fails when this file
and the code disagree. Regenerate with ` + "`go test ./internal/docs -update`" + ` in ` + "`host/`" + `.

## Container labels

Put these on a database container. A container with an invalid label is
skipped with an error naming the label (in the log and on ` + "`GET /jobs`" + `);
unknown ` + "`backup.*`" + ` labels are reported as warnings.

| label | meaning |
|---|---|
`)
	for _, k := range labels.Keys() {
		fmt.Fprintf(&b, "| `%s` | %s |\n", k[0], escape(k[1]))
	}
	b.WriteString(`
## Environment variables

Every variable is read at start-up and validated: an invalid value stops
the agent with a message naming it. Secrets can also be given as
` + "`<NAME>_FILE`" + ` (ACCESS_KEY_ID, SECRET_ACCESS_KEY, WEBHOOK_SECRET). With
` + "`CONFIG_FILE`" + `, the file's values override the environment, and SIGHUP
re-reads it.

| variable | default | meaning |
|---|---|---|
`)
	for _, v := range config.Variables() {
		def := v.Default
		if def == "" {
			def = "—"
		} else if !strings.Contains(def, " ") {
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", v.Name, escape(def), escape(v.Doc))
	}
	return b.String()
}

func escape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
