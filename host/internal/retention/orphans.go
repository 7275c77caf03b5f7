package retention

import (
	"context"
	"fmt"
	"sort"

	"github.com/labelbackup/label-backup/host/internal/objname"
)

// Orphans lists the containers that have backups under prefix (as this
// agent names them) but are not in active (container names): containers
// that were removed, or renamed. Their backups are kept until an operator
// sets ORPHAN_RETENTION_PERIOD.
func Orphans(ctx context.Context, s Store, prefix string, active map[string]bool) ([]string, error) {
	list := ""
	if prefix != "" {
		list = prefix + "/"
	}
	objects, err := listAll(ctx, s, list)
	if err != nil {
		return nil, fmt.Errorf("listing %q: %w", list, err)
	}
	seen := map[string]bool{}
	for _, o := range objects {
		n, ok := objname.Parse(o.Key)
		if !ok || n.Prefix != prefix || active[n.Container] || seen[n.Container] {
			continue
		}
		seen[n.Container] = true
	}
	out := make([]string, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	sort.Strings(out)
	return out, nil
}
