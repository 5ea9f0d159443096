package handlers

import (
	"slices"
	"strings"

	"tunelab/gpu"
)

// remoteProvider says whether training leaves for a remote GPU provider (the http backend).
func remoteProvider(c gpu.Catalogue) bool {
	return slices.Contains(gpu.BackendNames(c), "http")
}

// backendWords says where training runs, for the legal pages: one phrase per configured
// backend.
func backendWords(c gpu.Catalogue) string {
	var parts []string
	for _, name := range gpu.BackendNames(c) {
		switch name {
		case "local":
			parts = append(parts, "this server itself (worker processes on this machine)")
		case "slurm":
			parts = append(parts, "the operator's Slurm cluster, whose compute nodes fetch the datasets they train on from this server")
		case "http":
			parts = append(parts, "a remote GPU provider the operator has chosen")
		default:
			parts = append(parts, "the "+name+" backend the operator has configured")
		}
	}
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}
