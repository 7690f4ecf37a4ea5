//go:build race

package assignor

// raceEnabled shrinks the largest test cases under the race detector.
const raceEnabled = true
