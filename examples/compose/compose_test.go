package compose

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// reference is what docs/CONFIGURATION.md lists.
type reference struct {
	labels map[string]bool
	vars   map[string]bool
	// fileVars may also be given as <NAME>_FILE.
	fileVars map[string]bool
}

var (
	rowRE      = regexp.MustCompile("^\\| `([^`]+)` \\|")
	fileVarsRE = regexp.MustCompile("`<NAME>_FILE` \\(([A-Z_, ]+)\\)")
)

func loadReference(t *testing.T) reference {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "CONFIGURATION.md"))
	if err != nil {
		t.Fatal(err)
	}
	ref := reference{labels: map[string]bool{}, vars: map[string]bool{}, fileVars: map[string]bool{}}
	section := ""
	for line := range strings.SplitSeq(string(raw), "\n") {
		if strings.HasPrefix(line, "## ") {
			section = strings.TrimPrefix(line, "## ")
		}
		if m := fileVarsRE.FindStringSubmatch(line); m != nil {
			for v := range strings.SplitSeq(m[1], ",") {
				ref.fileVars[strings.TrimSpace(v)] = true
			}
		}
		m := rowRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		switch section {
		case "Container labels":
			ref.labels[m[1]] = true
		case "Environment variables":
			ref.vars[m[1]] = true
		}
	}
	if len(ref.labels) < 5 || len(ref.vars) < 5 || !ref.labels["backup.enabled"] || !ref.vars["LOG_LEVEL"] {
		t.Fatalf("could not parse CONFIGURATION.md: %d labels, %d variables", len(ref.labels), len(ref.vars))
	}
	return ref
}

func (r reference) knowsVar(name string) bool {
	if r.vars[name] {
		return true
	}
	base, ok := strings.CutSuffix(name, "_FILE")
	return ok && r.fileVars[base]
}

// service is what the checks need of one compose service.
type service struct {
	name    string
	image   string
	env     map[string]string
	labels  map[string]string
	volumes []string
}

// parse reads the services of a compose file. It is not a YAML parser: it
// understands the block style these examples are written in (two-space
// indentation, map or "- KEY=value" list forms for environment and
// labels), and fails on anything else under those keys.
func parse(t *testing.T, path string) []*service {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*service
	var cur *service
	inServices := false
	block := "" // environment, labels, volumes
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if strings.Contains(line, "\t") {
			t.Fatalf("%s:%d: tab in indentation", path, n)
		}
		switch {
		case indent == 0:
			inServices = trimmed == "services:"
			cur, block = nil, ""
			continue
		case !inServices:
			continue
		case indent == 2:
			name, rest, ok := strings.Cut(trimmed, ":")
			if !ok || strings.TrimSpace(rest) != "" {
				t.Fatalf("%s:%d: want a service name, got %q", path, n, trimmed)
			}
			cur = &service{name: name, env: map[string]string{}, labels: map[string]string{}}
			out = append(out, cur)
			block = ""
			continue
		case indent == 4:
			key, val, _ := strings.Cut(trimmed, ":")
			block = ""
			switch key {
			case "image":
				cur.image = unquote(stripComment(val))
			case "environment", "labels", "volumes":
				if strings.TrimSpace(val) != "" {
					t.Fatalf("%s:%d: %s must be a block", path, n, key)
				}
				block = key
			}
			continue
		}
		if block == "" {
			continue
		}
		if indent != 6 {
			t.Fatalf("%s:%d: unexpected indentation in %s", path, n, block)
		}
		var key, val string
		if item, ok := strings.CutPrefix(trimmed, "- "); ok {
			item = unquote(stripComment(item))
			if block == "volumes" {
				cur.volumes = append(cur.volumes, item)
				continue
			}
			key, val, _ = strings.Cut(item, "=")
		} else {
			var ok bool
			key, val, ok = strings.Cut(trimmed, ":")
			if !ok || block == "volumes" {
				t.Fatalf("%s:%d: cannot read %q", path, n, trimmed)
			}
			key, val = unquote(key), unquote(stripComment(val))
		}
		switch block {
		case "environment":
			cur.env[key] = val
		case "labels":
			cur.labels[key] = val
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// stripComment drops a trailing " # comment" outside quotes.
func stripComment(s string) string {
	inQuote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote != 0:
			if c == inQuote {
				inQuote = 0
			}
		case c == '"' || c == '\'':
			inQuote = c
		case c == '#' && (i == 0 || s[i-1] == ' '):
			return strings.TrimSpace(s[:i])
		}
	}
	return strings.TrimSpace(s)
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

func files(t *testing.T) []string {
	t.Helper()
	fs, err := filepath.Glob("*.yml")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"development.yml", "mongodb-minio.yml", "multi-database.yml", "mysql-s3.yml", "postgres-local.yml"}
	for _, w := range want {
		if !slices.Contains(fs, w) {
			t.Errorf("example %s is missing", w)
		}
	}
	return fs
}

var backupKeyRE = regexp.MustCompile(`\bbackup\.[a-z_]+`)

// TestOnlyDocumentedLabelsAndVariables: every backup.* label and every
// agent environment variable in the examples is in CONFIGURATION.md.
func TestOnlyDocumentedLabelsAndVariables(t *testing.T) {
	ref := loadReference(t)
	for _, f := range files(t) {
		t.Run(f, func(t *testing.T) {
			raw, _ := os.ReadFile(f)
			// Whatever the structure, any backup.<key> written anywhere
			// outside comments must be a real label.
			for i, line := range strings.Split(string(raw), "\n") {
				code := stripComment(line)
				if strings.HasPrefix(strings.TrimSpace(code), "#") {
					continue
				}
				for _, k := range backupKeyRE.FindAllString(code, -1) {
					if !ref.labels[k] {
						t.Errorf("line %d: %s is not a label listed in CONFIGURATION.md", i+1, k)
					}
				}
			}
			services := parse(t, f)
			agents := 0
			backedUp := 0
			for _, s := range services {
				for k := range s.labels {
					if strings.HasPrefix(k, "backup.") && !ref.labels[k] {
						t.Errorf("service %s: label %s is not listed in CONFIGURATION.md", s.name, k)
					}
				}
				if s.labels["backup.enabled"] == "true" {
					backedUp++
				}
				if s.image != "label-backup" {
					continue
				}
				agents++
				for k := range s.env {
					if !ref.knowsVar(k) {
						t.Errorf("agent service %s: variable %s is not listed in CONFIGURATION.md", s.name, k)
					}
				}
			}
			if agents != 1 {
				t.Errorf("%d services run the label-backup image, want 1", agents)
			}
			if backedUp == 0 {
				t.Error("no container is labeled backup.enabled=true")
			}
		})
	}
}

// TestLabelValues checks the values the agent would otherwise reject at
// discovery.
func TestLabelValues(t *testing.T) {
	types := []string{"postgres", "mysql", "mongodb", "redis"}
	for _, f := range files(t) {
		t.Run(f, func(t *testing.T) {
			var agent *service
			needS3 := false
			for _, s := range parse(t, f) {
				if s.image == "label-backup" {
					agent = s
				}
				l := s.labels
				switch l["backup.enabled"] {
				case "", "false":
					continue
				case "true":
				default:
					t.Errorf("%s: backup.enabled = %q", s.name, l["backup.enabled"])
				}
				if !slices.Contains(types, l["backup.type"]) {
					t.Errorf("%s: backup.type = %q, want one of %v", s.name, l["backup.type"], types)
				}
				if n := len(strings.Fields(l["backup.cron"])); n != 5 && n != 6 && !strings.HasPrefix(l["backup.cron"], "@") {
					t.Errorf("%s: backup.cron = %q", s.name, l["backup.cron"])
				}
				// Without backup.conn the connection is derived from the
				// container (zero-config); a label that is there must say
				// something, and mongodb has no exec mode.
				if c, ok := l["backup.conn"]; ok && strings.TrimSpace(c) == "" {
					t.Errorf("%s: empty backup.conn", s.name)
				}
				switch m := l["backup.mode"]; {
				case m != "" && m != "network" && m != "exec":
					t.Errorf("%s: backup.mode = %q", s.name, m)
				case m == "exec" && l["backup.type"] == "mongodb":
					t.Errorf("%s: mongodb has no exec mode", s.name)
				}
				switch l["backup.dest"] {
				case "", "local":
				case "s3", "remote":
					needS3 = true
				default:
					t.Errorf("%s: backup.dest = %q", s.name, l["backup.dest"])
				}
				if c, ok := l["backup.compression"]; ok && !slices.Contains([]string{"gzip", "zstd", "none"}, c) {
					t.Errorf("%s: backup.compression = %q", s.name, c)
				}
				if l["backup.type"] == "mongodb" && l["backup.database"] != "" {
					// The URI's path must not name another database.
					uri := l["backup.conn"]
					rest := uri[strings.Index(uri, "://")+3:]
					if _, path, ok := strings.Cut(rest, "/"); ok {
						db, _, _ := strings.Cut(path, "?")
						if db != "" && db != l["backup.database"] {
							t.Errorf("%s: backup.conn names database %q but backup.database is %q", s.name, db, l["backup.database"])
						}
					}
				}
			}
			if agent == nil {
				t.Fatal("no agent service")
			}
			if needS3 && agent.env["BUCKET_NAME"] == "" {
				t.Error("backup.dest=s3 without BUCKET_NAME")
			}
			if !slices.Contains(agent.volumes, "/var/run/docker.sock:/var/run/docker.sock:ro") {
				t.Errorf("the agent must mount the Docker socket read-only; volumes %v", agent.volumes)
			}
		})
	}
}

// TestComposeConfig validates each file with docker compose (v2) or
// docker-compose (v1) when one is installed.
func TestComposeConfig(t *testing.T) {
	var base []string
	if exec.Command("docker", "compose", "version").Run() == nil {
		base = []string{"docker", "compose"}
	} else if p, err := exec.LookPath("docker-compose"); err == nil {
		base = []string{p}
	} else {
		t.Fatal("neither docker compose nor docker-compose is installed: run scripts/install-deps.sh")
	}
	for _, f := range files(t) {
		args := append(slices.Clone(base[1:]), "-f", f, "config", "-q")
		cmd := exec.Command(base[0], args...)
		cmd.Env = append(os.Environ(), "DOCKER_GID=999")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s config: %v\n%s", f, err, out)
		}
	}
}

// TestCheckerCatchesMistakes makes sure the checks above can fail.
func TestCheckerCatchesMistakes(t *testing.T) {
	ref := loadReference(t)
	if ref.labels["backup.schedule"] || ref.knowsVar("S3_BUCKET") || ref.knowsVar("LOG_LEVEL_FILE") {
		t.Error("reference accepts names that do not exist")
	}
	if !ref.knowsVar("SECRET_ACCESS_KEY_FILE") || !ref.knowsVar("WEBHOOK_SECRET_FILE") {
		t.Error("reference rejects documented _FILE variables")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.yml")
	os.WriteFile(p, []byte(`services:
  db:
    image: postgres:15
    labels:
      backup.enabled: "true" # comment
      - backup.schedule=daily
  agent:
    image: "label-backup"
    environment:
      - S3_BUCKET=x
`), 0o644)
	s := parse(t, p)
	if len(s) != 2 || s[0].labels["backup.schedule"] != "daily" || s[0].labels["backup.enabled"] != "true" ||
		s[1].image != "label-backup" || s[1].env["S3_BUCKET"] != "x" {
		t.Errorf("parsed %+v %+v", s[0], s[1])
	}
}
