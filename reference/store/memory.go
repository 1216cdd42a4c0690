package store

// Memory is a Store held in process memory: the persistent memory of an
// emulated card that lives as long as the process. Its tear point and write
// sequence are the same as File's, so a tearing test on Memory shows what a
// card does.
type Memory struct {
	engine
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{engine: engine{img: newImage()}}
}
