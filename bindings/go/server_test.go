package glr

// The test server's control interface (testserver/README.md) and what every test shares.
// tests/go_bindings.rs starts the server and runs `go test` with:
//
//	GLR_TEST_URL                 the server's base URL
//	GLR_TEST_REGISTRATION_TOKEN  a registration token it accepts
//	GLR_TEST_SUMMARY             where TestMain writes the final state expected of each job the
//	                             tests finished, for the Rust test to check on its own

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"
)

var (
	serverURL         = os.Getenv("GLR_TEST_URL")
	registrationToken = os.Getenv("GLR_TEST_REGISTRATION_TOKEN")

	expectedMu sync.Mutex
	expected   = map[string]map[string]interface{}{} // job id -> {state, checksum_matches}
)

func TestMain(m *testing.M) {
	if serverURL == "" || registrationToken == "" {
		fmt.Fprintln(os.Stderr, "GLR_TEST_URL and GLR_TEST_REGISTRATION_TOKEN must name a running glr-testserver "+
			"(cargo test --test go_bindings starts one)")
		os.Exit(2)
	}
	code := m.Run()
	if path := os.Getenv("GLR_TEST_SUMMARY"); path != "" {
		data, _ := json.Marshal(expected)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// control calls the server's control interface; out (if not nil) receives the JSON answer.
func control(t *testing.T, method, path string, body, out interface{}) {
	t.Helper()
	var in []byte
	if body != nil {
		in, _ = json.Marshal(body)
	}
	req, err := http.NewRequest(method, serverURL+path, bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// jobRecord is the part of the server's job record the tests read.
type jobRecord struct {
	State           string `json:"state"`
	FailureReason   string `json:"failure_reason"`
	ExitCode        *int   `json:"exit_code"`
	ChecksumMatches *bool  `json:"checksum_matches"`
	TraceBase64     string `json:"trace_base64"`
}

func (r jobRecord) trace(t *testing.T) string {
	b, err := base64.StdEncoding.DecodeString(r.TraceBase64)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func serverJob(t *testing.T, id int64) jobRecord {
	t.Helper()
	var r jobRecord
	control(t, "GET", fmt.Sprintf("/__control/jobs/%d", id), nil, &r)
	return r
}

// uniqueTag makes a tag only one test's runner has, so only its jobs go to it.
func uniqueTag() string {
	return fmt.Sprintf("go%d%06d", time.Now().UnixNano()%1e9, rand.Intn(1e6))
}

// queueJob queues a job for runners with tag and returns its id.
func queueJob(t *testing.T, tag string, overrides map[string]interface{}) int64 {
	t.Helper()
	if overrides == nil {
		overrides = map[string]interface{}{}
	}
	var out struct {
		ID int64 `json:"id"`
	}
	control(t, "POST", "/__control/jobs", map[string]interface{}{"overrides": overrides, "tags": []string{tag}}, &out)
	return out.ID
}

func cancelOnServer(t *testing.T, id int64, graceful bool) {
	t.Helper()
	control(t, "POST", fmt.Sprintf("/__control/jobs/%d/cancel", id), map[string]bool{"graceful": graceful}, nil)
}

func injectFault(t *testing.T, fault map[string]interface{}) {
	t.Helper()
	control(t, "POST", "/__control/faults", fault, nil)
	t.Cleanup(func() { control(t, "DELETE", "/__control/faults", nil, nil) })
}

// registerRunner registers a runner with a tag of its own, closed after the test.
func registerRunner(t *testing.T, opts *RegisterOptions) (*Runner, string) {
	t.Helper()
	tag := uniqueTag()
	if opts == nil {
		opts = &RegisterOptions{}
	}
	opts.Tags = append(opts.Tags, tag)
	r, err := Register(serverURL, registrationToken, opts)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r, tag
}

// takeJob queues a job for tag and takes it with r (closed after the test).
func takeJob(t *testing.T, r *Runner, tag string, overrides map[string]interface{}) *Job {
	t.Helper()
	id := queueJob(t, tag, overrides)
	for i := 0; i < 20; i++ {
		job, err := r.RequestJob(context.Background())
		if err != nil {
			t.Fatalf("RequestJob: %v", err)
		}
		if job != nil {
			t.Cleanup(func() { job.Close() })
			if job.ID() != id {
				t.Fatalf("took job %d, queued %d", job.ID(), id)
			}
			return job
		}
	}
	t.Fatalf("job %d never came", id)
	return nil
}

// expectFinal checks the server's record of a finished job and notes it for the summary.
func expectFinal(t *testing.T, id int64, state string, checksum bool) jobRecord {
	t.Helper()
	rec := serverJob(t, id)
	if rec.State != state {
		t.Fatalf("job %d is %q on the server, want %q", id, rec.State, state)
	}
	entry := map[string]interface{}{"state": state}
	if checksum {
		if rec.ChecksumMatches == nil || !*rec.ChecksumMatches {
			t.Fatalf("job %d: checksum_matches = %v, want true", id, rec.ChecksumMatches)
		}
		entry["checksum_matches"] = true
	}
	expectedMu.Lock()
	expected[fmt.Sprint(id)] = entry
	expectedMu.Unlock()
	return rec
}

// scriptSteps is a job's steps: script, and after_script when given.
func scriptSteps(script []string, afterScript []string) []map[string]interface{} {
	steps := []map[string]interface{}{{"name": "script", "script": script, "timeout": 3600, "when": "on_success", "allow_failure": false}}
	if afterScript != nil {
		steps = append(steps, map[string]interface{}{"name": "after_script", "script": afterScript, "timeout": 3600, "when": "always", "allow_failure": true})
	}
	return steps
}

// lockedBuffer is an io.Writer safe for the diagnostics goroutine and the test to share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// next waits up to d for ch: what it delivered, or ok false when it was closed; a timeout
// fails the test.
func next(t *testing.T, ch <-chan State, d time.Duration) (s State, ok bool) {
	t.Helper()
	select {
	case s, ok = <-ch:
		return s, ok
	case <-time.After(d):
		t.Fatalf("Canceled() neither delivered nor closed within %v", d)
		return StateUnknown, false
	}
}
