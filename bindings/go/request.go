package glr

// #include <gitlab_runner_api.h>
import "C"

import (
	"context"
	"time"
)

// interruptEvery is how often a cancelled RequestJob repeats glr_runner_interrupt until the
// call returns: an interrupt ends only calls already inside the library, and the call may not
// have entered it yet when the context was cancelled.
const interruptEvery = 20 * time.Millisecond

// RequestJob asks GitLab for a job, long-polling like the official runner (GitLab may hold the
// request up to about a minute). It returns (nil, nil) when there is no job now; a job received
// is accepted at once. Cancelling ctx ends the call promptly (glr_runner_interrupt) with an
// *Error of status ErrInterrupted that also matches ctx's error (errors.Is(err,
// context.Canceled)). A job GitLab assigned just before the cancel is returned rather than
// dropped. The call is also bounded by SetCallTimeout (ErrTimeout).
func (r *Runner) RequestJob(ctx context.Context) (*Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, &Error{Status: ErrInterrupted, Message: "request_job: " + err.Error(), cause: err}
	}
	var out *C.glr_job
	done := make(chan struct{})
	watcherEnded := make(chan struct{})
	err := r.call(nil, func(p *C.glr_runner) C.glr_status {
		go func() {
			defer close(watcherEnded)
			select {
			case <-done:
				return
			case <-ctx.Done():
			}
			ticker := time.NewTicker(interruptEvery)
			defer ticker.Stop()
			for {
				C.glr_runner_interrupt(p) // the handle is live: call waits for this goroutine
				select {
				case <-done:
					return
				case <-ticker.C:
				}
			}
		}()
		st := C.glr_runner_request_job(p, &out)
		close(done)
		<-watcherEnded
		return st
	})
	if err != nil {
		if e, ok := err.(*Error); ok && e.Status == ErrInterrupted && ctx.Err() != nil {
			e.cause = ctx.Err()
		}
		return nil, err
	}
	if out == nil {
		return nil, nil
	}
	return newJob(out), nil
}
