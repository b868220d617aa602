// Command deploycheck validates kustomizations of deploy/ offline, as the
// tests of this module do, and prints every problem it finds.
//
//	cd deploy/validate
//	go run ./cmd/deploycheck                      # overlays/dev and overlays/prod
//	go run ./cmd/deploycheck ../overlays/prod     # one kustomization
//	GATEWAY_BIN=/path/to/gateway go run ./cmd/deploycheck
//
// The binary checked against (its `--help` settings and its
// `--check-config`) is GATEWAY_BIN (or -gateway-bin), or ./cmd/gateway
// built from the repository around this folder into a temporary folder.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/meshgen/gateway/deploy/validate"
)

func main() {
	bin := flag.String("gateway-bin", os.Getenv("GATEWAY_BIN"), "gateway binary to check against: its --help lists the settings, its --check-config validates each configuration (default: build ./cmd/gateway)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: deploycheck [-gateway-bin PATH] [KUSTOMIZATION_DIR...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	os.Exit(run(*bin, flag.Args()))
}

func run(bin string, dirs []string) int {
	root, err := validate.RepoRoot(".")
	if err != nil && bin == "" {
		fmt.Fprintln(os.Stderr, "deploycheck:", err)
		return 2
	}
	if len(dirs) == 0 {
		for _, ov := range []string{"dev", "prod"} {
			dirs = append(dirs, filepath.Join(root, "deploy", "overlays", ov))
		}
	}
	tmp, err := os.MkdirTemp("", "deploycheck-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploycheck:", err)
		return 2
	}
	defer os.RemoveAll(tmp)
	gw, err := validate.LoadGateway(context.Background(), bin, root, tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploycheck:", err)
		return 2
	}
	fmt.Printf("settings from %s: %s\n", gw.Source, strings.Join(gw.Settings.Names(), " "))
	status := 0
	for _, d := range dirs {
		if err := validate.Dir(d, gw); err != nil {
			fmt.Printf("FAIL %s: %v\n", d, err)
			status = 1
			continue
		}
		fmt.Printf("ok   %s\n", d)
	}
	return status
}
