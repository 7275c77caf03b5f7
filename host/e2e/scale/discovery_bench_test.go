package scale

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/labelbackup/label-backup/host/internal/itest"
)

const (
	// idleImage is the FROM scratch image of the idle command, built once
	// and reused while its recipe label matches idleRecipe.
	idleImage  = "labelbackup-itest/idle:1"
	idleRecipe = "idle-1" // bump when idle/main.go or the Dockerfile changes

	// fleet is how many labeled containers run before the agent starts.
	fleet = 500
	// workers is how many containers are created, started or removed at
	// once during setup and clean-up.
	workers = 8
	// newContainers is how many single containers are started afterwards,
	// one at a time, to time the event path.
	newContainers = 5

	// runLabel carries the benchmark run's id on every container it makes,
	// so clean-up finds them all, even those whose create call failed
	// half-way.
	runLabel = "labelbackup.itest.scale"

	// Targets (issue "Discovery and scheduling", item 8). Missing one is
	// logged, not a failure: a benchmark reports numbers.
	targetScheduled = 10 * time.Second
	targetNew       = time.Second
)

// labelsFor are the labels of every benchmark container: a valid synthetic
// job whose schedule never comes round during the run.
func labelsFor(run string) map[string]string {
	return map[string]string{
		"backup.enabled":   "true",
		"backup.type":      "synthetic",
		"backup.cron":      "@every 24h",
		"backup.conn":      "synthetic://?size=1",
		itest.LabelKey:     "1",
		itest.TestLabelKey: "BenchmarkDiscovery500",
		runLabel:           run,
	}
}

// BenchmarkDiscovery500 measures discovery at scale. With 500 labeled
// containers running, it starts the agent and reports
//
//   - s-to-500-scheduled: from the agent process's start until GET /jobs
//     lists all 500 jobs (target < 10 s);
//   - ms-new-container-scheduled: then, for 5 more containers started one
//     at a time, the longest time from the start call returning until the
//     container's job is in GET /jobs (target < 1 s), and
//     ms-new-container-scheduled-p50, the median of the 5;
//   - s-setup-500-containers: creating and starting the 500 containers
//     (not part of the measurement, for information), and s-to-healthz:
//     from the agent's start until /healthz answers.
//
// Each invocation measures once, whatever b.N is (run it with
// -benchtime 1x); ns/op is meaningless and hidden.
func BenchmarkDiscovery500(b *testing.B) {
	itest.RequireDocker(b)
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		b.Fatalf("docker client: %v", err)
	}
	defer cli.Close()
	ensureIdleImage(b)
	itest.BuildBinaries(b) // before any timing: StartAgent reuses the build

	run := randomHex(4)
	prefix := "lbscale-" + run + "-"
	b.Cleanup(func() { removeRun(b, cli, run) })

	// Setup: the 500 containers, concurrently.
	start := time.Now()
	names := make([]string, fleet)
	for i := range names {
		names[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	if err := forEach(names, workers, func(name string) error {
		_, err := startContainer(cli, name, run)
		return err
	}); err != nil {
		b.Fatalf("starting %d containers: %v", fleet, err)
	}
	setup := time.Since(start)
	b.Logf("setup: %d containers created and started in %v (%d workers)", fleet, setup.Round(time.Millisecond), workers)

	// The agent: a long reconcile interval, so that the new containers
	// below are found through Docker events, not by the periodic re-list.
	env := map[string]string{
		"LOCAL_BACKUP_PATH":          filepath.Join(b.TempDir(), "backups"),
		"RECONCILE_INTERVAL_SECONDS": "300",
	}
	b.ResetTimer()
	t0 := time.Now()
	agent := itest.StartAgent(b, env) // returns once /healthz answers
	toHealthz := time.Since(t0)
	ours := func(v itest.JobsView) int {
		n := 0
		for _, j := range v.Jobs {
			if strings.HasPrefix(j.ContainerName, prefix) {
				n++
			}
		}
		return n
	}
	var last itest.JobsView
	toAll := pollJobs(b, agent, 60*time.Second, 25*time.Millisecond, fmt.Sprintf("all %d jobs", fleet), func(v itest.JobsView) bool {
		last = v
		return ours(v) >= fleet
	}, t0)
	if n := ours(last); n != fleet {
		b.Errorf("/jobs lists %d jobs of this run, want %d", n, fleet)
	}
	for _, r := range last.Rejected {
		if strings.HasPrefix(r.ContainerName, prefix) {
			b.Errorf("container %s rejected: %s", r.ContainerName, r.Error)
		}
	}
	b.Logf("agent: /healthz after %v, all %d jobs in /jobs after %v", toHealthz.Round(time.Millisecond), fleet, toAll.Round(time.Millisecond))

	// One more container at a time: from the start call returning until
	// its job is listed.
	lat := make([]time.Duration, 0, newContainers)
	for i := range newContainers {
		name := fmt.Sprintf("%snew-%d", prefix, i)
		id, err := createContainer(cli, name, run)
		if err != nil {
			b.Fatalf("creating %s: %v", name, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = cli.ContainerStart(ctx, id, container.StartOptions{})
		cancel()
		if err != nil {
			b.Fatalf("starting %s: %v", name, err)
		}
		started := time.Now()
		d := pollJobs(b, agent, 30*time.Second, 5*time.Millisecond, "the job of "+name, func(v itest.JobsView) bool {
			return len(v.WithID(id)) == 1
		}, started)
		b.Logf("new container %d: scheduled %v after its start", i+1, d.Round(time.Millisecond))
		lat = append(lat, d)
		// Let the engine's remaining events for it (none expected after
		// start) and the agent's re-list settle before the next one.
		time.Sleep(300 * time.Millisecond)
	}
	b.StopTimer()
	slices.Sort(lat)
	worst, median := lat[len(lat)-1], lat[len(lat)/2]

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(toAll.Seconds(), "s-to-500-scheduled")
	b.ReportMetric(float64(worst.Microseconds())/1000, "ms-new-container-scheduled")
	b.ReportMetric(float64(median.Microseconds())/1000, "ms-new-container-scheduled-p50")
	b.ReportMetric(setup.Seconds(), "s-setup-500-containers")
	b.ReportMetric(toHealthz.Seconds(), "s-to-healthz")
	if toAll > targetScheduled {
		b.Logf("MISSED TARGET: %d jobs after %v (target %v)", fleet, toAll, targetScheduled)
	}
	if worst > targetNew {
		b.Logf("MISSED TARGET: a new container was scheduled after %v (target %v)", worst, targetNew)
	}
	if b.N > 1 {
		b.Logf("b.N = %d, but the benchmark measures once per invocation; use -benchtime 1x", b.N)
	}
}

// pollJobs polls GET /jobs every interval until cond holds and returns the
// time since from. It fails the benchmark after timeout, or if the agent
// exits.
func pollJobs(b *testing.B, a *itest.Agent, timeout, every time.Duration, what string, cond func(itest.JobsView) bool, from time.Time) time.Duration {
	b.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		v, err := a.Jobs()
		if err == nil && cond(v) {
			return time.Since(from)
		}
		if err != nil {
			lastErr = err
		}
		if exited, aerr := a.Exited(); exited {
			b.Fatalf("agent exited (%v) while waiting for %s", aerr, what)
		}
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %v waiting for %s (last error: %v)", timeout, what, lastErr)
		}
		time.Sleep(every)
	}
}

// createContainer creates (does not start) a benchmark container.
func createContainer(cli *client.Client, name, run string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := cli.ContainerCreate(ctx,
		&container.Config{Image: idleImage, Labels: labelsFor(run)},
		&container.HostConfig{NetworkMode: "none"},
		nil, nil, name)
	if err != nil {
		return "", err
	}
	return resp.ID, nil
}

// startContainer creates and starts a benchmark container.
func startContainer(cli *client.Client, name, run string) (string, error) {
	id, err := createContainer(cli, name, run)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return id, fmt.Errorf("starting %s: %w", name, err)
	}
	return id, nil
}

// removeRun force-removes every container of the run, whatever its state,
// n at a time. It runs at clean-up, so after a failure too (unless
// LB_ITEST_KEEP is set; scripts/docker-down.sh removes leftovers by their
// labelbackup.itest label).
func removeRun(b *testing.B, cli *client.Client, run string) {
	if v := os.Getenv("LB_ITEST_KEEP"); v != "" && v != "0" {
		b.Logf("LB_ITEST_KEEP set; keeping the containers labeled %s=%s", runLabel, run)
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", runLabel+"="+run))})
	if err != nil {
		b.Errorf("clean-up: listing the run's containers: %v", err)
		return
	}
	ids := make([]string, len(list))
	for i, c := range list {
		ids[i] = c.ID
	}
	err = forEach(ids, workers, func(id string) error {
		err := cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !client.IsErrNotFound(err) {
			return err
		}
		return nil
	})
	if err != nil {
		b.Errorf("clean-up: %v", err)
	}
	b.Logf("clean-up: %d containers removed in %v", len(ids), time.Since(start).Round(time.Millisecond))
}

// forEach calls fn on every item with n goroutines and returns the first
// error; after an error the remaining items are skipped.
func forEach(items []string, n int, fn func(string) error) error {
	work := make(chan string)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				if err := fn(it); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, it := range items {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		work <- it
	}
	close(work)
	wg.Wait()
	return firstErr
}

// ensureIdleImage builds idleImage unless an image with the current recipe
// exists: the idle command, static, in a FROM scratch image (no registry is
// reachable, so no base image).
func ensureIdleImage(b *testing.B) {
	b.Helper()
	have, err := exec.Command("docker", "image", "inspect", "--format",
		`{{index .Config.Labels "lb.recipe"}}`, idleImage).Output()
	if err == nil && strings.TrimSpace(string(have)) == idleRecipe {
		return
	}
	start := time.Now()
	dir := b.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(dir, "idle"), ".")
	build.Dir = filepath.Join(sourceDir(), "idle")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building the idle command: %v\n%s", err, out)
	}
	dockerfile := "FROM scratch\nCOPY idle /idle\n" +
		"LABEL lb.recipe=" + idleRecipe + " labelbackup.itest.image=1\n" +
		"STOPSIGNAL SIGTERM\nENTRYPOINT [\"/idle\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("docker", "build", "-q", "-t", idleImage, dir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("docker build %s: %v\n%s", idleImage, err, out)
	}
	b.Logf("image %s built in %v", idleImage, time.Since(start).Round(time.Millisecond))
}

// sourceDir is the directory of this file.
func sourceDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

func randomHex(n int) string {
	p := make([]byte, n)
	_, _ = rand.Read(p)
	return hex.EncodeToString(p)
}
