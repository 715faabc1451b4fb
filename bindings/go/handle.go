package glr

import (
	"sync"
	"time"
)

// handle counts the calls in progress on a C handle, so that its free function runs only once
// none is left and none can start: the C library lets a free run while calls are inside it,
// but a goroutine that passed the closed check and has not yet entered C cannot be told apart
// from one inside, so the binding waits for both.
type handle struct {
	mu       sync.Mutex
	inFlight int
	closed   bool
	drained  chan struct{} // closed once closed && inFlight == 0
	freed    chan struct{} // closed once the free function returned
}

func newHandle() handle {
	return handle{drained: make(chan struct{}), freed: make(chan struct{})}
}

// enter counts a call; false after close began (the call must not touch the C handle).
func (h *handle) enter() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.inFlight++
	return true
}

// leave ends a call counted by enter.
func (h *handle) leave() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.inFlight--
	if h.closed && h.inFlight == 0 {
		close(h.drained)
	}
}

// isClosed tells whether close began.
func (h *handle) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// close refuses new calls, then until the calls in progress have returned calls poke every
// 20 ms (to end them sooner: the runner interrupts its network calls; nil for none), then
// calls free. A second close waits for the first one's free.
func (h *handle) close(poke func(), free func()) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		<-h.freed
		return
	}
	h.closed = true
	if h.inFlight == 0 {
		close(h.drained)
	}
	h.mu.Unlock()
	if poke != nil {
		ticker := time.NewTicker(20 * time.Millisecond)
		defer ticker.Stop()
	wait:
		for {
			poke() // safe: the handle is freed only below
			select {
			case <-h.drained:
				break wait
			case <-ticker.C:
			}
		}
	}
	<-h.drained
	free()
	close(h.freed)
}
