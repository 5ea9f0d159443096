package main

import (
	"io"
	"sync"
)

// syncWriter lets the server log from many goroutines into one buffer under -race.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
