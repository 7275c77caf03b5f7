package itest

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/metadata"
	"github.com/labelbackup/label-backup/host/internal/objname"
)

// LabeledScript is the main process of RunLabeled containers. It ignores
// SIGHUP, so `docker kill -s HUP` leaves the container running, and exits
// at once on SIGTERM, so `docker stop` (and a daemon shutdown) need no
// grace period. The sleep runs in the background so the shell handles a
// signal immediately instead of after the current sleep.
const LabeledScript = `trap "" HUP; trap "exit 0" TERM INT; while :; do sleep 1 & wait $!; done`

// UniqueName returns prefix plus a random suffix, for container names that
// never collide with another test or an earlier run.
func UniqueName(prefix string) string {
	return prefix + "-" + randomHex(3)
}

// LabeledArgs returns the arguments after `docker run -d` or `docker create`
// for a placeholder container (no network, the test image running
// LabeledScript) carrying labels. extra flags go before the image name.
func LabeledArgs(t testing.TB, name string, labels map[string]string, extra ...string) []string {
	args := []string{"--name", name, "--network", "none", "-v", "/usr:/usr:ro"}
	args = append(args, labelArgs(t, labels)...)
	args = append(args, extra...)
	return append(args, Image, "sh", "-c", LabeledScript)
}

// RunLabeled starts a placeholder container carrying labels and returns its
// ID. Whatever container has this name when the test ends is removed.
func RunLabeled(t testing.TB, name string, labels map[string]string, extra ...string) string {
	t.Helper()
	RequireDocker(t)
	removeStale(t, name)
	RemoveOnCleanup(t, name)
	return Docker(t, append([]string{"run", "-d"}, LabeledArgs(t, name, labels, extra...)...)...)
}

// RemoveOnCleanup force-removes the container ref (name or ID) when the
// test ends; a missing container is fine.
func RemoveOnCleanup(t testing.TB, ref string) { removeOnCleanup(t, ref) }

// JobsView is the body of GET /jobs.
type JobsView struct {
	Jobs     []JobView      `json:"jobs"`
	Rejected []RejectedView `json:"rejected"`
	Queued   int64          `json:"queued"`
	Running  int64          `json:"running"`
}

// JobView is one scheduled job in GET /jobs.
type JobView struct {
	ContainerID   string     `json:"container_id"`
	ContainerName string     `json:"container_name"`
	DatabaseType  string     `json:"database_type"`
	Cron          string     `json:"cron_schedule"`
	Prefix        string     `json:"backup_prefix"`
	Busy          bool       `json:"busy"`
	NextRun       *time.Time `json:"next_run"`
	LastRun       *RunView   `json:"last_run"`
}

// RunView is a job's last run in GET /jobs.
type RunView struct {
	RunID           string    `json:"run_id"`
	Outcome         string    `json:"outcome"`
	Started         time.Time `json:"started"`
	DurationSeconds float64   `json:"duration_seconds"`
	Object          string    `json:"object"`
	SizeBytes       int64     `json:"size_bytes"`
	Error           string    `json:"error"`
}

// RejectedView is a container with bad labels in GET /jobs.
type RejectedView struct {
	ContainerID   string `json:"container_id"`
	ContainerName string `json:"container_name"`
	Error         string `json:"error"`
	Problems      []struct {
		Label   string `json:"label"`
		Message string `json:"message"`
	} `json:"problems"`
}

// Named returns the jobs whose container is called name.
func (v JobsView) Named(name string) []JobView {
	var out []JobView
	for _, j := range v.Jobs {
		if j.ContainerName == name {
			out = append(out, j)
		}
	}
	return out
}

// WithID returns the jobs of the container with this ID.
func (v JobsView) WithID(id string) []JobView {
	var out []JobView
	for _, j := range v.Jobs {
		if j.ContainerID == id {
			out = append(out, j)
		}
	}
	return out
}

// RejectedNamed returns the rejected entries of the container called name.
func (v JobsView) RejectedNamed(name string) []RejectedView {
	var out []RejectedView
	for _, r := range v.Rejected {
		if r.ContainerName == name {
			out = append(out, r)
		}
	}
	return out
}

var apiClient = &http.Client{Timeout: 5 * time.Second}

// Jobs fetches GET /jobs. It does not touch t, so it is safe in goroutines.
func (a *Agent) Jobs() (JobsView, error) {
	var v JobsView
	resp, err := apiClient.Get(a.URL + "/jobs")
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("GET /jobs: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return v, fmt.Errorf("GET /jobs: decoding: %w", err)
	}
	return v, nil
}

// MustJobs is Jobs failing the test on error.
func (a *Agent) MustJobs(t testing.TB) JobsView {
	t.Helper()
	v, err := a.Jobs()
	if err != nil {
		t.Fatalf("itest: %v", err)
	}
	return v
}

// Healthz reports whether GET /healthz answers 200.
func (a *Agent) Healthz() error {
	resp, err := apiClient.Get(a.URL + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /healthz: status %d", resp.StatusCode)
	}
	return nil
}

// Trigger asks the agent to back up a container now (POST
// /jobs/{container}/run) and returns the status code.
func (a *Agent) Trigger(t testing.TB, container string) int {
	t.Helper()
	resp, err := apiClient.Post(a.URL+"/jobs/"+container+"/run", "application/json", nil)
	if err != nil {
		t.Fatalf("itest: POST /jobs/%s/run: %v", container, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// JobPoller polls GET /jobs in the background, as fast as asked, and hands
// every answer to a callback, to catch states that last only a moment.
type JobPoller struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	n    int
	errs []error
}

// PollJobs starts polling every interval; fn runs on the polling goroutine
// with the time the answer arrived. Stop it with Stop (also done at cleanup).
func PollJobs(t testing.TB, a *Agent, every time.Duration, fn func(at time.Time, v JobsView)) *JobPoller {
	p := &JobPoller{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			v, err := a.Jobs()
			p.mu.Lock()
			if err != nil {
				p.errs = append(p.errs, err)
			} else {
				p.n++
			}
			p.mu.Unlock()
			if err == nil {
				fn(time.Now(), v)
			}
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { p.Stop() })
	return p
}

// Stop ends the polling and returns how many answers arrived and the
// errors met.
func (p *JobPoller) Stop() (int, []error) {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n, p.errs
}

// Backup is one complete backup on disk: a data file and its metadata.
type Backup struct {
	Path string // data file
	Meta metadata.Metadata
}

// ScanBackups walks a local backup tree. It returns the complete backups
// (a data file whose metadata file is readable and names its size) and
// everything else it finds as problems: temporary files, data files
// without metadata, metadata without data, size mismatches. While backups
// are running some problems are normal (a temporary file being written, a
// data file whose metadata comes next); once the agent has stopped there
// must be none. A missing root is an empty tree.
func ScanBackups(root string) ([]Backup, []string, error) {
	var backups []Backup
	var problems []string
	files := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			files[p] = true
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		name := filepath.Base(p)
		switch {
		case strings.Contains(name, ".tmp-") || strings.HasPrefix(name, "."):
			problems = append(problems, "temporary or hidden file: "+p)
		case strings.HasSuffix(name, objname.MetadataSuffix):
			if !files[strings.TrimSuffix(p, objname.MetadataSuffix)] {
				problems = append(problems, "metadata without its backup: "+p)
			}
		default:
			if !files[p+objname.MetadataSuffix] {
				problems = append(problems, "backup without metadata: "+p)
				continue
			}
			raw, err := os.ReadFile(p + objname.MetadataSuffix)
			if err != nil {
				problems = append(problems, fmt.Sprintf("unreadable metadata of %s: %v", p, err))
				continue
			}
			meta, err := metadata.Unmarshal(raw)
			if err != nil {
				problems = append(problems, fmt.Sprintf("bad metadata of %s: %v", p, err))
				continue
			}
			info, err := os.Stat(p)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", p, err))
				continue
			}
			if info.Size() != meta.BackupSizeBytes {
				problems = append(problems, fmt.Sprintf("%s has %d bytes, its metadata says %d", p, info.Size(), meta.BackupSizeBytes))
				continue
			}
			backups = append(backups, Backup{Path: p, Meta: meta})
		}
	}
	return backups, problems, nil
}

// BackupsIn returns the complete backups directly in root/dir (dir is
// "[<prefix>/]<container>"), oldest first.
func BackupsIn(t testing.TB, root, dir string) []Backup {
	t.Helper()
	all, _, err := ScanBackups(filepath.Join(root, dir))
	if err != nil {
		t.Fatalf("itest: scanning backups: %v", err)
	}
	var out []Backup
	for _, b := range all {
		if filepath.Dir(b.Path) == filepath.Join(root, dir) {
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Meta.Timestamp.Before(out[j].Meta.Timestamp) })
	return out
}

// CheckNoPartials fails the test for every problem ScanBackups finds under
// root. Call it after the agent has stopped.
func CheckNoPartials(t testing.TB, root string) {
	t.Helper()
	_, problems, err := ScanBackups(root)
	if err != nil {
		t.Fatalf("itest: scanning backups: %v", err)
	}
	for _, p := range problems {
		t.Errorf("backup tree %s: %s", root, p)
	}
}
