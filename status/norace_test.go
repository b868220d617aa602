//go:build !race

package status

// raceEnabled: the race detector is on (its instrumentation allocates).
const raceEnabled = false
