package mysql

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/labelbackup/label-backup/sdk/toolexec"
)

// flavor is the family of a client tool: their option names differ.
type flavor int

const (
	flavorMariaDB flavor = iota
	flavorMySQL
)

func (f flavor) String() string {
	if f == flavorMySQL {
		return "MySQL"
	}
	return "MariaDB"
}

// toolKind is what a tool is for.
type toolKind int

const (
	dumpTool   toolKind = iota // mariadb-dump or mysqldump
	clientTool                 // mariadb or mysql
)

// toolNames are the candidates of each kind, preferred first.
var toolNames = map[toolKind][]string{
	dumpTool:   {"mariadb-dump", "mysqldump"},
	clientTool: {"mariadb", "mysql"},
}

// findTool returns the path of a tool of kind k: the first candidate in
// bin_dir, or in PATH when bin_dir is not set.
func (p *Plugin) findTool(k toolKind) (string, error) {
	binDir := p.getBinDir()
	names := toolNames[k]
	for _, name := range names {
		if binDir != "" {
			if path := filepath.Join(binDir, name); isExecutable(path) {
				return path, nil
			}
			continue
		}
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	where := "PATH"
	if binDir != "" {
		where = fmt.Sprintf("%s %q", OptionBinDir, binDir)
	}
	return "", fmt.Errorf("neither %s nor %s found in %s (install the MariaDB or MySQL client tools or set the %s option): %w",
		names[0], names[1], where, OptionBinDir, exec.ErrNotFound)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// tool finds a tool of kind k and its flavor.
func (p *Plugin) tool(ctx context.Context, k toolKind) (string, flavor, error) {
	path, err := p.findTool(k)
	if err != nil {
		return "", 0, err
	}
	f, err := p.flavorOf(ctx, path)
	if err != nil {
		return "", 0, err
	}
	return path, f, nil
}

// flavorOf tells MariaDB's tools from MySQL's. Tools named mariadb* are
// MariaDB's; for mysql and mysqldump (MariaDB ships them too, often as
// links) the answer comes from --version, once per path.
func (p *Plugin) flavorOf(ctx context.Context, path string) (flavor, error) {
	if strings.HasPrefix(filepath.Base(path), "mariadb") {
		return flavorMariaDB, nil
	}
	p.mu.RLock()
	f, ok := p.flavors[path]
	p.mu.RUnlock()
	if ok {
		return f, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	if _, err := toolexec.Run(ctx, toolexec.Command{Path: path, Args: []string{"--version"}, Stdout: &out}); err != nil {
		return 0, fmt.Errorf("asking %s for its version: %w", path, err)
	}
	f = flavorMySQL
	if strings.Contains(out.String(), "MariaDB") {
		f = flavorMariaDB
	}
	p.mu.Lock()
	if p.flavors == nil {
		p.flavors = map[string]flavor{}
	}
	p.flavors[path] = f
	p.mu.Unlock()
	return f, nil
}
