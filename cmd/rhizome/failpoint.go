package main

import (
	"fmt"
	"os"

	"github.com/rhizome-kv/rhizome/site"
	"github.com/rhizome-kv/rhizome/store"
)

// failpointsEnv names the environment variable that arms the store's
// failpoints (store.ParseFailpoints), for tests that crash the real process
// at a named point of the commit path: RHIZOME_FAILPOINTS=commit/after=crash@50.
// It is no flag, so no recipe or config file sets it by mistake.
const failpointsEnv = "RHIZOME_FAILPOINTS"

// armFailpoints sets cfg.Failpoint from the environment, if the variable is
// set. A crash point writes one line to stderr, then the process SIGKILLs
// itself: nothing deferred runs, nothing buffered is flushed, as in a real
// crash.
func armFailpoints(cfg *site.Config, lookupEnv func(string) (string, bool)) error {
	spec, ok := lookupEnv(failpointsEnv)
	if !ok || spec == "" {
		return nil
	}
	fp, err := store.ParseFailpoints(spec, func(name string) {
		fmt.Fprintf(os.Stderr, "failpoint %s: crashing\n", name)
		if self, err := os.FindProcess(os.Getpid()); err == nil {
			_ = self.Kill() // SIGKILL on Unix
		}
		select {} // the signal is on its way
	})
	if err != nil {
		return fmt.Errorf("%s: %w", failpointsEnv, err)
	}
	cfg.Failpoint = fp
	cfg.Logger.Warn("failpoints armed: this process will fail on purpose (tests only)", "spec", spec)
	return nil
}
