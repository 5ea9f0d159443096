package handlers

import "sync"

// signOuts tells live streams that some session of a person may just have ended (a
// sign-out, a password change), so each re-checks its own session at once instead of at
// its next keep-alive.
type signOuts struct {
	mu   sync.Mutex
	subs map[int64]map[chan struct{}]struct{}
}

func newSignOuts() *signOuts { return &signOuts{subs: map[int64]map[chan struct{}]struct{}{}} }

// watch returns a channel that receives after a notify for userID, and a stop function.
func (s *signOuts) watch(userID int64) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	if s.subs[userID] == nil {
		s.subs[userID] = map[chan struct{}]struct{}{}
	}
	s.subs[userID][ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.subs[userID], ch)
		if len(s.subs[userID]) == 0 {
			delete(s.subs, userID)
		}
	}
}

// notify wakes every watcher of userID; it never blocks.
func (s *signOuts) notify(userID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs[userID] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
