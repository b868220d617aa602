//go:build race

package gateway

// raceEnabled: the race detector is on (its instrumentation allocates).
const raceEnabled = true
