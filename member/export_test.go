package member

import "time"

// PauseForTest freezes the member for d, as a stop-the-world pause would:
// no heartbeat, no timer, no callback runs meanwhile.
func (m *Member) PauseForTest(d time.Duration) { m.pause <- d }
