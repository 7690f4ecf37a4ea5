package election

// HoldKeepAlives holds back (hold true) or lets through again every lease
// call of e's campaigns and terms: no keep-alive is sent, and grants and
// revocations fail, as if this coordinator could not reach etcd.
func HoldKeepAlives(e *Elector, hold bool) { e.hold.Store(hold) }
