package glr

// Cancels learned through Job.Canceled, without any callback: the binding installs none (the
// C library's callbacks run on its own thread), so these tests pass only through the event
// descriptor and the state.

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// logUntil appends a line every 100 ms (each upload's answer tells the library the job's
// state) until ch delivers or closes, at most 20 s; it returns what ch delivered.
func logUntil(t *testing.T, job *Job, ch <-chan State) (State, bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		select {
		case s, ok := <-ch:
			return s, ok
		case <-time.After(100 * time.Millisecond):
		}
		fmt.Fprintf(job, "working %d\n", i) // may fail once GitLab stopped the job: fine
	}
	t.Fatal("the cancel never arrived on Canceled()")
	return StateUnknown, false
}

func TestGracefulCancelThroughChannel(t *testing.T) {
	r, tag := registerRunner(t, nil)
	job := takeJob(t, r, tag, map[string]interface{}{"steps": scriptSteps([]string{"sleep 600"}, []string{"echo after"})})
	canceled := job.Canceled()
	if job.Canceled() != canceled {
		t.Fatal("Canceled() returned another channel the second time")
	}
	fmt.Fprintln(job, "started")
	cancelOnServer(t, job.ID(), true)
	s, ok := logUntil(t, job, canceled)
	if !ok || s != StateCanceling || job.State() != StateCanceling {
		t.Fatalf("Canceled() gave %v, %v; State() %v", s, ok, job.State())
	}
	// Graceful: the after_script runs, its output is logged, the job is finished.
	for _, line := range job.AfterScript() {
		fmt.Fprintf(job, "$ %s\nafter\n", line)
	}
	if err := job.SetSuccess(); err != nil {
		t.Fatalf("SetSuccess after a graceful cancel: %v", err)
	}
	rec := expectFinal(t, job.ID(), "canceled", false)
	if !strings.Contains(rec.trace(t), "$ echo after\nafter\n") {
		t.Fatalf("the after_script's output is not in the trace: %q", rec.trace(t))
	}
	// Then the channel closes (after a StateCanceled, if the library reports the end as that).
	for {
		s, ok := next(t, canceled, 5*time.Second)
		if !ok {
			break
		}
		if s != StateCanceled {
			t.Fatalf("Canceled() delivered %v after the job ended", s)
		}
	}
}

func TestHardCancelThroughChannel(t *testing.T) {
	r, tag := registerRunner(t, nil)
	job := takeJob(t, r, tag, nil)
	fmt.Fprintln(job, "started")
	if err := job.Flush(); err != nil {
		t.Fatal(err)
	}
	// A cancel that happens before the first Canceled call is delivered too.
	cancelOnServer(t, job.ID(), false)
	if err := job.Auth(); !errors.Is(err, ErrJobCanceled) {
		t.Fatalf("Auth after a hard cancel: %v", err)
	}
	canceled := job.Canceled()
	if s, ok := next(t, canceled, 5*time.Second); !ok || s != StateCanceled {
		t.Fatalf("Canceled() gave %v, %v", s, ok)
	}
	if s, ok := next(t, canceled, 5*time.Second); ok { // canceled is final: the channel closes
		t.Fatalf("Canceled() delivered %v after StateCanceled", s)
	}
	err := job.SetSuccess()
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrJobCanceled) || e.Message == "" {
		t.Fatalf("SetSuccess after a hard cancel: %#v", err)
	}
	expectFinal(t, job.ID(), "canceled", false)
}

func TestHardCancelLearnedInTheBackground(t *testing.T) {
	r, tag := registerRunner(t, nil)
	job := takeJob(t, r, tag, nil)
	canceled := job.Canceled()
	cancelOnServer(t, job.ID(), false)
	// No call of ours asks GitLab: the background's log upload learns it.
	if s, ok := logUntil(t, job, canceled); !ok || s != StateCanceled {
		t.Fatalf("Canceled() gave %v, %v", s, ok)
	}
}

// The combination issue 15 found fragile: diagnostics at debug level while the trace upload
// fails (503) and GitLab cancels the job. The lines come through the pipe, the cancel through
// the channel; nothing calls into Go from a library thread.
func TestCancelDespiteTrace503WithDiagnostics(t *testing.T) {
	var diag lockedBuffer
	if err := SetLogWriter(&diag, LogDebug); err != nil {
		t.Fatal(err)
	}
	defer SetLogWriter(nil, LogDebug)
	r, tag := registerRunner(t, nil)
	job := takeJob(t, r, tag, nil)
	canceled := job.Canceled()
	injectFault(t, map[string]interface{}{"endpoint": "trace", "kind": "status", "code": 503, "count": 3})
	fmt.Fprintln(job, "this upload gets 503 three times")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(diag.String(), "503") {
		if time.Now().After(deadline) {
			t.Fatalf("no diagnostic line about the 503 within 20 s; lines:\n%s", diag.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancelOnServer(t, job.ID(), false)
	if s, ok := logUntil(t, job, canceled); !ok || s != StateCanceled {
		t.Fatalf("Canceled() gave %v, %v", s, ok)
	}
	for _, line := range strings.Split(strings.TrimSpace(diag.String()), "\n") {
		if !strings.HasPrefix(line, "gitlab_runner_api: ") {
			t.Fatalf("a diagnostic line not in the documented form: %q", line)
		}
		if strings.Contains(line, job.Token()) || strings.Contains(line, r.Token()) {
			t.Fatalf("a diagnostic line shows a token: %q", line)
		}
	}
	// Off: the writer gets nothing more.
	if err := SetLogWriter(nil, LogDebug); err != nil {
		t.Fatal(err)
	}
	n := len(diag.String())
	if err := r.CheckAuth(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if len(diag.String()) != n {
		t.Fatalf("lines after SetLogWriter(nil): %q", diag.String()[n:])
	}
}

func TestCloseEndsTheCancelChannel(t *testing.T) {
	r, tag := registerRunner(t, nil)
	job := takeJob(t, r, tag, nil)
	fmt.Fprintln(job, "closing without finishing")
	if err := job.Flush(); err != nil {
		t.Fatal(err)
	}
	id := job.ID()
	eventFDs := countEventFDs(t)
	canceled := job.Canceled()
	if countEventFDs(t) <= eventFDs {
		t.Fatal("Canceled() opened no event descriptor")
	}
	job.Close()
	if s, ok := next(t, canceled, 2*time.Second); ok {
		t.Fatalf("Canceled() delivered %v on Close", s)
	}
	if _, err := job.Write([]byte("x")); err != ErrClosed {
		t.Fatalf("Write after Close: %v", err)
	}
	if job.State() != StateUnknown || job.ID() != 0 {
		t.Fatalf("State() %v, ID() %d after Close", job.State(), job.ID())
	}
	if c := job.Canceled(); c != canceled {
		t.Fatal("Canceled() after Close is another channel")
	}
	cancelOnServer(t, id, false) // the server still has the job running
	// The job's descriptor and the binding's duplicate are both closed.
	if n := countEventFDs(t); n > eventFDs {
		t.Fatalf("%d eventfds open after Close, %d before Canceled()", n, eventFDs)
	}
}

// countEventFDs counts the process's open eventfds.
func countEventFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == "anon_inode:[eventfd]" {
			n++
		}
	}
	return n
}
