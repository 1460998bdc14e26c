package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// sourcesNote tells the precedence of the places a serve flag can come from.
const sourcesNote = `Every flag can also be set by an environment variable, RHIZOME_ and the flag's
name in upper case with '_' for '-' (RHIZOME_DATA_DIR for --data-dir), and by a
key of the YAML file that --config-file names (keys are the flag names, as in
etcd's config file: "data-dir: /var/lib/rhizome"; a list may be a YAML list).
Precedence: a flag on the command line, then the environment, then the file,
then the default.`

// envPrefix starts the environment variable of each flag, as ETCD_ does etcd's.
const envPrefix = "RHIZOME_"

// envName is the environment variable that sets flag name: data-dir is
// RHIZOME_DATA_DIR.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// configSource is where a flag's value came from, for error messages.
type configSource struct {
	lookupEnv func(string) (string, bool) // os.LookupEnv in the binary
	readFile  func(string) ([]byte, error)
}

// fill sets every flag of fs that the command line left unset: from its
// environment variable if there is one, else from the config file if it has
// the key. configFlag names the flag holding the file's path (itself settable
// from the environment, not from the file); skip lists flags that neither
// source sets. A bad value is one error naming the flag, the value and where
// it came from.
func (src configSource) fill(fs *flag.FlagSet, configFlag string, skip ...string) error {
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	for _, name := range skip {
		explicit[name] = true
	}
	if !explicit[configFlag] {
		if v, ok := src.lookupEnv(envName(configFlag)); ok {
			if err := fs.Set(configFlag, v); err != nil {
				return fmt.Errorf("--%s: %w", configFlag, err)
			}
		}
	}
	explicit[configFlag] = true
	var file map[string]string
	if path := fs.Lookup(configFlag).Value.String(); path != "" {
		var err error
		if file, err = src.readConfigFile(path, fs, configFlag, skip); err != nil {
			return err
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || explicit[f.Name] {
			return
		}
		env := envName(f.Name)
		if v, ok := src.lookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("--%s: invalid value %q from %s: %w", f.Name, v, env, e)
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("--%s: invalid value %q from %s: %w", f.Name, v, fs.Lookup(configFlag).Value, e)
			}
		}
	})
	return err
}

// readConfigFile reads a YAML mapping of flag names to values. A list value is
// joined with commas (what the list flags take); an empty value leaves the flag
// alone. Unknown keys are errors, so a typo is not silently ignored.
func (src configSource) readConfigFile(path string, fs *flag.FlagSet, configFlag string, skip []string) (map[string]string, error) {
	data, err := src.readFile(path)
	if pe := (*os.PathError)(nil); errors.As(err, &pe) {
		err = pe.Err // the path is in the message already
	}
	if err != nil {
		return nil, fmt.Errorf("--%s %s: %w", configFlag, path, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("--%s %s: %w", configFlag, path, err)
	}
	if len(doc.Content) == 0 { // an empty file
		return nil, nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("--%s %s: want a mapping of flag names to values", configFlag, path)
	}
	out := map[string]string{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		key, val := m.Content[i], m.Content[i+1]
		if fs.Lookup(key.Value) == nil || key.Value == configFlag || slices.Contains(skip, key.Value) {
			return nil, fmt.Errorf("--%s %s line %d: unknown key %q (keys are the flag names of 'rhizome serve --help')", configFlag, path, key.Line, key.Value)
		}
		v, err := scalarOrList(val)
		if err != nil {
			return nil, fmt.Errorf("--%s %s line %d: %s: %w", configFlag, path, val.Line, key.Value, err)
		}
		if val.Tag != "!!null" {
			out[key.Value] = v
		}
	}
	return out, nil
}

// scalarOrList is a scalar's text, or a list of scalars joined with commas.
func scalarOrList(n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value, nil
	case yaml.SequenceNode:
		items := make([]string, len(n.Content))
		for i, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return "", fmt.Errorf("want a list of plain values")
			}
			items[i] = c.Value
		}
		return strings.Join(items, ","), nil
	}
	return "", fmt.Errorf("want a value or a list of values")
}

// osConfigSource reads the process's environment and files.
func osConfigSource() configSource {
	return configSource{lookupEnv: os.LookupEnv, readFile: os.ReadFile}
}
