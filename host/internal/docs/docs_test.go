package docs

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/CONFIGURATION.md")

func TestConfigurationReferenceIsCurrent(t *testing.T) {
	path := filepath.Join("..", "..", "..", "docs", "CONFIGURATION.md")
	got := Configuration()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/docs -update)", err)
	}
	if string(want) != got {
		t.Errorf("docs/CONFIGURATION.md is out of date with the code: run go test ./internal/docs -update in host/")
	}
}
