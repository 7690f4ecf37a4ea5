//go:build !unix

package main

import "errors"

// raiseOpenFileLimit reports that this system has no open-file limit to
// raise.
func raiseOpenFileLimit() (now, was uint64, err error) {
	return 0, 0, errors.New("open-file limits are not supported on this system")
}
