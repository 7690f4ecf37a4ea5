package coordinator

// Leading reports whether this coordinator serves groups right now. Health
// checks and the leadership gauge read it.
func (s *Server) Leading() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed
}
