package glr

// #include <gitlab_runner_api.h>
import "C"

import (
	"os"
	"syscall"
)

// Canceled returns a channel that receives StateCanceling when GitLab asks for a graceful stop
// (run your after_script, log, then finish the job) and StateCanceled when GitLab stopped the
// job, each at most once, whichever request revealed it (a log upload, a keep-alive, Auth, the
// final update). It is closed when the job is over (success, failed, canceled) or closed.
//
// No callback is involved: a goroutine waits on the job's event descriptor (an eventfd, through
// Go's netpoller, so a watched job costs no OS thread) and reads the state after each change.
// Every call returns the same channel; the goroutine starts with the first call, which also
// delivers a cancel that happened before it.
func (j *Job) Canceled() <-chan State {
	c := j.c
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	if c.canceled == nil {
		c.canceled = make(chan State, 2) // canceling, canceled: never blocks the goroutine
		if err := c.startWatching(); err != nil {
			// No descriptor (closed job, a fork()ed child's copy): no state change will be seen.
			close(c.canceled)
		}
	}
	return c.canceled
}

// startWatching duplicates the job's event descriptor (the job closes its own when freed; ours
// is closed by stopWatching) and starts the goroutine reading it. watchMu is held.
func (c *jobCore) startWatching() error {
	var fd C.int32_t
	if err := c.call(nil, func(p *C.glr_job) C.glr_status { return C.glr_job_event_fd(p, &fd) }); err != nil {
		return err
	}
	// F_DUPFD_CLOEXEC: a child process started meanwhile must not inherit it.
	dup, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return errno
	}
	// Non-blocking (the library created it so; the flag is shared with the duplicate), hence
	// os.NewFile registers it with the netpoller and Close ends a Read at once.
	if err := syscall.SetNonblock(int(dup), true); err != nil {
		syscall.Close(int(dup))
		return err
	}
	c.events = os.NewFile(dup, "glr-job-events")
	go c.watch(c.events, c.canceled)
	return nil
}

// stopWatching closes our descriptor: watch's Read returns and the goroutine ends.
func (c *jobCore) stopWatching() {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	if c.events != nil {
		c.events.Close()
		c.events = nil
	}
}

// watch delivers the cancel states to out until the job is over or closed. The state is read
// before each wait: a change after the read leaves the descriptor readable, so none is missed.
func (c *jobCore) watch(events *os.File, out chan<- State) {
	defer close(out)
	sent := map[State]bool{}
	counter := make([]byte, 8)
	for {
		state := StateUnknown
		if !c.h.enter() {
			return
		}
		state = State(C.glr_job_state(c.ptr))
		c.h.leave()
		if (state == StateCanceling || state == StateCanceled) && !sent[state] {
			sent[state] = true
			out <- state
		}
		if state.final() || state == StateUnknown {
			return
		}
		if _, err := events.Read(counter); err != nil {
			return // closed by stopWatching (Close)
		}
	}
}
