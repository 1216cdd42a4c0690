//go:build !unix

package store

import (
	"io"
	"os"
)

// lock creates name and holds it open. Without flock there is no guard
// against a second process opening the same store; do not do that.
func lock(name string) (io.Closer, error) {
	return os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
}
