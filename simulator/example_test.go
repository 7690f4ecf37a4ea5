package simulator_test

import (
	"fmt"
	"time"

	"github.com/regroup-dev/regroup/simulator"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

// A parameter sweep in Go: how long may a stop-the-world pause of 15 s be
// survived, depending on the session timeout? The scenario is text with
// the parameter filled in; each run is checked and measured.
func Example_sweep() {
	const text = `
topic orders partitions=64
group g session=%v
at 0s join m1..m10
at 60s pause m4 for=15s
`
	for _, session := range []time.Duration{6 * time.Second, 10 * time.Second, 30 * time.Second} {
		sc, err := scenario.Parse("pause", fmt.Sprintf(text, session))
		if err != nil {
			panic(err)
		}
		res, err := simulator.Run(sc, simulator.Options{})
		if err != nil {
			panic(err)
		}
		m := res.Metrics
		expired := m.Causes["member-expired"] > 0
		fmt.Printf("session %v: expired=%v lost=%d ok=%v\n", session, expired, m.Lost, res.OK())
	}
	// Output:
	// session 6s: expired=true lost=6 ok=true
	// session 10s: expired=true lost=6 ok=true
	// session 30s: expired=false lost=0 ok=true
}
