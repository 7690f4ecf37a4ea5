package auth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// tokens is a parsed token file: one line per token, "<name> <hash>", the
// hash being the SHA-256 of the token in hex (`printf %s "$TOKEN" |
// sha256sum`). Blank lines and lines starting with # are ignored. The file
// holds no token, so that reading it gives none away.
type tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	name string
	hash [sha256.Size]byte
}

// loadTokens reads and parses a token file.
func loadTokens(file string) (tokens, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return tokens{}, fmt.Errorf("regroup: token file: %w", err)
	}
	return parseTokens(file, data)
}

// parseTokens parses a token file's content; errors name file and line.
func parseTokens(file string, data []byte) (tokens, error) {
	var t tokens
	seen := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return tokens{}, fmt.Errorf("regroup: token file %s:%d: want \"<name> <sha256 of the token in hex>\", got %d fields", file, n, len(f))
		}
		var e tokenEntry
		e.name = f[0]
		h, err := hex.DecodeString(f[1])
		if err != nil || len(h) != sha256.Size {
			return tokens{}, fmt.Errorf("regroup: token file %s:%d: the hash of %q is not 64 hex digits (make it with: printf %%s \"$TOKEN\" | sha256sum)", file, n, e.name)
		}
		copy(e.hash[:], h)
		if prev, dup := seen[e.hash]; dup {
			return tokens{}, fmt.Errorf("regroup: token file %s:%d: the same token as line %d; give every name its own token", file, n, prev)
		}
		seen[e.hash] = n
		t.entries = append(t.entries, e)
	}
	if err := sc.Err(); err != nil {
		return tokens{}, fmt.Errorf("regroup: token file %s: %w", file, err)
	}
	return t, nil
}

// lookup returns the name of token. It compares the token's hash with every
// entry in constant time, so that its duration tells nothing of which
// entry, or how much of one, matched.
func (t tokens) lookup(token string) (string, bool) {
	h := sha256.Sum256([]byte(token))
	name, found := "", 0
	for _, e := range t.entries {
		if subtle.ConstantTimeCompare(h[:], e.hash[:]) == 1 {
			name, found = e.name, 1
		}
	}
	return name, found == 1
}
