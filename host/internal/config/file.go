package config

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// FileVar names the optional configuration file. A running process's
// environment cannot change, so SIGHUP re-reads this file: its values
// override the environment's.
const FileVar = "CONFIG_FILE"

// FromEnvAndFile reads the environment and, when CONFIG_FILE is set, that
// file on top of it.
func FromEnvAndFile() (Config, error) {
	path := os.Getenv(FileVar)
	if path == "" {
		return FromEnv()
	}
	vars, err := ReadEnvFile(path)
	if err != nil {
		return Config{}, err
	}
	return Load(func(k string) (string, bool) {
		if v, ok := vars[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	})
}

// ReadEnvFile parses KEY=VALUE lines; blank lines and lines starting with #
// are ignored, "export " prefixes and matching quotes around values are
// accepted. Errors name the line, never its value (it may be a secret).
func ReadEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", FileVar, err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s %s line %d: want KEY=VALUE", FileVar, path, n)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			if v[0] == '"' {
				uq, err := strconv.Unquote(v)
				if err != nil {
					return nil, fmt.Errorf("%s %s line %d: bad quoting", FileVar, path, n)
				}
				v = uq
			} else {
				v = v[1 : len(v)-1]
			}
		}
		vars[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", FileVar, path, err)
	}
	return vars, nil
}
