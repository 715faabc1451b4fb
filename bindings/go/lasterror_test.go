package glr

// The finding of issue 15: Go moves goroutines between OS threads, so the C library's
// thread-local last error is often another goroutine's. The binding reads the message kept
// per handle instead. 16 goroutines make failing calls on their own runners, whose messages
// name the goroutine and the call; with runtime.Gosched() between the call and the read (what
// any Go code may do: a log line, a channel operation), the per-handle message must always be
// the goroutine's own. The thread-local message read in the same place is counted too, as a
// figure of what the binding avoids.

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestPerHandleErrorsAcrossGoroutines(t *testing.T) {
	const goroutines, calls = 16, 3000
	base, _ := registerRunner(t, nil)
	dump, err := base.Dumps()
	if err != nil {
		t.Fatal(err)
	}
	runners := make([]*Runner, goroutines)
	for g := range runners {
		if runners[g], err = Loads(dump); err != nil {
			t.Fatal(err)
		}
		defer runners[g].Close()
	}

	var perHandleWrong, threadLocalWrong, failures int64
	var firstWrong atomic.Value
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int, r *Runner) {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				// Invalid (a key may not start with '-'); the message quotes the key.
				key := fmt.Sprintf("-g%02d-call%d", g, i)
				own := `"` + key + `"`
				var threadLocal string
				err := r.setLabel(func() {
					runtime.Gosched()
					threadLocal = threadLastError()
				}, key, "v")
				var e *Error
				if !errors.As(err, &e) || e.Status != ErrInvalidArgument {
					atomic.AddInt64(&failures, 1)
					continue
				}
				if !strings.Contains(e.Message, own) {
					atomic.AddInt64(&perHandleWrong, 1)
					firstWrong.CompareAndSwap(nil, fmt.Sprintf("goroutine %d call %d read %q", g, i, e.Message))
				}
				if !strings.Contains(threadLocal, own) {
					atomic.AddInt64(&threadLocalWrong, 1)
				}
			}
		}(g, runners[g])
	}
	wg.Wait()
	total := goroutines * calls
	t.Logf("failing calls: %d; wrong messages read through the per-handle function: %d; "+
		"through the thread-local function in the same place (not used by the binding): %d",
		total, perHandleWrong, threadLocalWrong)
	if failures != 0 {
		t.Fatalf("%d calls did not fail with ErrInvalidArgument", failures)
	}
	if perHandleWrong != 0 {
		t.Fatalf("%d of %d messages were another goroutine's; first: %v", perHandleWrong, total, firstWrong.Load())
	}
}
