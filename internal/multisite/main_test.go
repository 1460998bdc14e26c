package multisite

import (
	"os"
	"testing"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// rhizomeBuild is the binary the tests run, built on first use.
var rhizomeBuild testbin.Rhizome

func TestMain(m *testing.M) {
	code := m.Run()
	rhizomeBuild.Remove()
	os.Exit(code)
}
