package glr

// One writer per job: a hand-over makes the handle a watcher and the loaded dump continues the
// log exactly; Shutdown uploads what is pending.

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHandOverThenLoadJobContinuesTheLog(t *testing.T) {
	r, tag := registerRunner(t, nil)
	job := takeJob(t, r, tag, nil)
	fmt.Fprint(job, "part 1 flushed\n")
	if err := job.Flush(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(job, "part 2 not flushed\n") // the next owner sends it
	path := filepath.Join(t.TempDir(), "job.json")
	if err := job.HandOverDump(path); err != nil {
		t.Fatalf("HandOverDump: %v", err)
	}
	if !job.IsWatcher() {
		t.Fatal("the handle is not a watcher after the hand-over")
	}
	_, err := job.Write([]byte("from the old owner\n"))
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrNotOwner) || e.Message == "" {
		t.Fatalf("Write on a watcher: %#v", err)
	}
	if _, err := job.HandOverDumps(); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("second hand-over: %v", err)
	}

	nextOwner, err := LoadJob(path)
	if err != nil {
		t.Fatalf("LoadJob: %v", err)
	}
	defer nextOwner.Close()
	if nextOwner.ID() != job.ID() || nextOwner.IsWatcher() {
		t.Fatalf("loaded job %d (watcher %v), handed over %d", nextOwner.ID(), nextOwner.IsWatcher(), job.ID())
	}
	fmt.Fprint(nextOwner, "part 3 from the next owner\n")
	if err := nextOwner.SetSuccess(); err != nil {
		t.Fatalf("SetSuccess: %v", err)
	}
	rec := expectFinal(t, nextOwner.ID(), "success", true)
	if want := "part 1 flushed\npart 2 not flushed\npart 3 from the next owner\n"; rec.trace(t) != want {
		t.Fatalf("server trace %q, want %q", rec.trace(t), want)
	}
}

func TestHandOverDumpsWatchLoadsAndSnapshots(t *testing.T) {
	r, tag := registerRunner(t, nil)
	job := takeJob(t, r, tag, nil)
	fmt.Fprint(job, "before the snapshot\n")
	snapshot, err := job.Dumps()
	if err != nil || !strings.Contains(snapshot, "gitlab_runner_api.job") {
		t.Fatalf("Dumps: %v", err)
	}
	if job.IsWatcher() {
		t.Fatal("Dumps made the handle a watcher")
	}
	dump, err := job.HandOverDumps()
	if err != nil {
		t.Fatal(err)
	}
	watcher, err := WatchLoads(dump)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	if !watcher.IsWatcher() {
		t.Fatal("WatchLoads is not a watcher")
	}
	nextOwner, err := LoadsJob(dump)
	if err != nil {
		t.Fatal(err)
	}
	defer nextOwner.Close()
	fmt.Fprint(nextOwner, "after the hand-over\n")
	if err := nextOwner.Flush(); err != nil {
		t.Fatal(err)
	}
	// GitLab cancels: the watcher loaded from the dump learns it through its channel.
	cancelOnServer(t, nextOwner.ID(), false)
	if err := watcher.Auth(); !errors.Is(err, ErrJobCanceled) {
		t.Fatalf("watcher Auth after the cancel: %v", err)
	}
	if s, ok := next(t, watcher.Canceled(), 5*time.Second); !ok || s != StateCanceled {
		t.Fatalf("watcher's Canceled() gave %v, %v", s, ok)
	}
	if rec := serverJob(t, nextOwner.ID()); rec.trace(t) != "before the snapshot\nafter the hand-over\n" {
		t.Fatalf("server trace %q", rec.trace(t))
	}
	if _, err := LoadsJob("not json"); !errors.Is(err, ErrParse) {
		t.Fatalf("LoadsJob(junk): %v", err)
	}
}

func TestShutdownUploadsPendingText(t *testing.T) {
	r, tag := registerRunner(t, nil)
	job := takeJob(t, r, tag, nil)
	if err := job.SetKeepaliveInterval(time.Hour); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("SetKeepaliveInterval(1 h): %v", err)
	}
	text := strings.Repeat("pending line\n", 200)
	fmt.Fprint(job, text)
	if err := Shutdown(30 * time.Second); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if rec := serverJob(t, job.ID()); rec.trace(t) != text || rec.State != "running" {
		t.Fatalf("after Shutdown the server has %d bytes (state %s), want %d", len(rec.trace(t)), rec.State, len(text))
	}
	// The library stays usable.
	if err := job.SetSuccess(); err != nil {
		t.Fatal(err)
	}
	expectFinal(t, job.ID(), "success", true)
}
