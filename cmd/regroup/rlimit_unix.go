//go:build unix

package main

import "syscall"

// raiseOpenFileLimit raises the soft open-file limit to the hard limit and
// returns the limit now and before.
func raiseOpenFileLimit() (now, was uint64, err error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0, err
	}
	was = uint64(l.Cur)
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return was, was, err
		}
	}
	return uint64(l.Cur), was, nil
}
