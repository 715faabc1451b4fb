package glr

// RequestJob and its bounds: a cancelled context ends a long poll at once (the library's
// glr_runner_interrupt), so do a context's deadline, the runner's call timeout and Close.

import (
	"context"
	"errors"
	"testing"
	"time"
)

// longPolling makes the server hold job requests for 30 s during the test.
func longPolling(t *testing.T) {
	t.Helper()
	var before struct {
		LongPollTimeoutMS int64 `json:"long_poll_timeout_ms"`
	}
	control(t, "GET", "/__control/settings", nil, &before)
	control(t, "PATCH", "/__control/settings", map[string]int64{"long_poll_timeout_ms": 30000}, nil)
	t.Cleanup(func() {
		control(t, "PATCH", "/__control/settings", map[string]int64{"long_poll_timeout_ms": before.LongPollTimeoutMS}, nil)
	})
}

// heldRunner is a runner with no jobs whose next request the server holds: the first request
// is answered at once (no job) with the queue's value, which the next one sends back.
func heldRunner(t *testing.T) *Runner {
	t.Helper()
	r, _ := registerRunner(t, nil)
	start := time.Now()
	if job, err := r.RequestJob(context.Background()); job != nil || err != nil {
		t.Fatalf("first RequestJob: %v, %v", job, err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("the first request was held (%v): the test cannot tell a hold from a return", time.Since(start))
	}
	return r
}

// requestFor runs RequestJob(ctx) and returns its error and duration.
func requestFor(t *testing.T, r *Runner, ctx context.Context) (error, time.Duration) {
	t.Helper()
	start := time.Now()
	job, err := r.RequestJob(ctx)
	if job != nil {
		job.Close()
		t.Fatal("RequestJob returned a job: none was queued")
	}
	return err, time.Since(start)
}

func TestRequestJobEndsWhenContextIsCancelled(t *testing.T) {
	longPolling(t)
	r := heldRunner(t)
	ctx, cancel := context.WithCancel(context.Background())
	const after = 700 * time.Millisecond
	timer := time.AfterFunc(after, cancel)
	defer timer.Stop()
	err, took := requestFor(t, r, ctx)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.Canceled) {
		t.Fatalf("RequestJob after cancel: %#v", err)
	}
	if took < after-50*time.Millisecond {
		t.Fatalf("RequestJob returned after %v, before the cancel: the server did not hold it", took)
	}
	if took-after > 2*time.Second {
		t.Fatalf("RequestJob took %v after the cancel", took-after)
	}
	t.Logf("returned %v after the cancel", took-after)

	// A context cancelled before the call: no request at all.
	err, took = requestFor(t, r, ctx)
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.Canceled) || took > time.Second {
		t.Fatalf("RequestJob with a cancelled context: %v after %v", err, took)
	}

	// The runner is still usable: the next call is not affected by the earlier interrupts.
	ctx, cancelLater := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancelLater()
	err, took = requestFor(t, r, ctx)
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RequestJob past its context's deadline: %v", err)
	}
	if took < 550*time.Millisecond || took > 2600*time.Millisecond {
		t.Fatalf("RequestJob with a 600 ms deadline took %v", took)
	}
}

func TestRequestJobCallTimeout(t *testing.T) {
	longPolling(t)
	r := heldRunner(t)
	if err := r.SetCallTimeout(500 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	err, took := requestFor(t, r, context.Background())
	if !errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RequestJob past the call timeout: %v", err)
	}
	if took < 450*time.Millisecond || took > 2500*time.Millisecond {
		t.Fatalf("RequestJob with a 500 ms call timeout took %v", took)
	}
}

func TestCloseEndsALongPoll(t *testing.T) {
	longPolling(t)
	r := heldRunner(t)
	done := make(chan error, 1)
	go func() {
		_, err := r.RequestJob(context.Background())
		done <- err
	}()
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	r.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("RequestJob ended by Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("RequestJob still running 2 s after Close")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %v", took)
	}
}
