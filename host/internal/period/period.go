// Package period parses the retention periods of labels and variables:
// "7d", "24h", "90m", and any Go duration such as "1h30m".
package period

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Parse parses a positive period. Days are 24 hours.
func Parse(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty period (want e.g. 7d, 24h or 90m)")
	}
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil {
			return 0, fmt.Errorf("period %q: days must be a number (want e.g. 7d, 24h or 90m)", s)
		}
		d = time.Duration(days * float64(24*time.Hour))
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("period %q is not a duration (want e.g. 7d, 24h or 90m)", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("period %q must be positive", s)
	}
	return d, nil
}

// Format renders d the way Parse reads it, preferring whole days.
func Format(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
