package glr

// The quick start of the README, in Go: register, take a job, read its properties, log
// through io.Writer, report success; the server stores the log and a matching checksum.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

func TestQuickStart(t *testing.T) {
	r, tag := registerRunner(t, &RegisterOptions{
		Description: "go quick start", Locked: Bool(true), Active: Bool(true), MaximumTimeout: time.Hour,
		Executor: "go-test", AccessLevel: "not_protected",
	})
	if r.ID() <= 0 || r.Description() != "go quick start" || r.Executor() != "go-test" || r.AccessLevel() != "not_protected" {
		t.Fatalf("runner id %d, description %q, executor %q, access level %q", r.ID(), r.Description(), r.Executor(), r.AccessLevel())
	}
	if active, known := r.Active(); !active || !known {
		t.Fatalf("Active() = %v, %v", active, known)
	}
	if _, known := r.RunUntagged(); known {
		t.Fatal("RunUntagged() known though not set")
	}
	if locked, known := r.Locked(); !locked || !known {
		t.Fatalf("Locked() = %v, %v", locked, known)
	}
	if tags := r.Tags(); len(tags) != 1 || tags[0] != tag {
		t.Fatalf("Tags() = %v", tags)
	}
	if mt, known := r.MaximumTimeout(); mt != time.Hour || !known {
		t.Fatalf("MaximumTimeout() = %v, %v", mt, known)
	}

	job := takeJob(t, r, tag, map[string]interface{}{
		"job_info": map[string]interface{}{"name": "go-build", "stage": "test"},
		"steps":    scriptSteps([]string{"make", "make check"}, []string{"echo cleanup"}),
		"variables": []map[string]interface{}{
			{"key": "GO_VAR", "value": "from the test", "public": true, "masked": false},
		},
	})
	if job.Name() != "go-build" || job.Stage() != "test" {
		t.Fatalf("Name() %q, Stage() %q", job.Name(), job.Stage())
	}
	if job.Ref() == "" || job.CommitSHA() == "" || job.ProjectPath() == "" || job.PipelineID() == "" {
		t.Fatalf("ref %q sha %q project %q pipeline %q", job.Ref(), job.CommitSHA(), job.ProjectPath(), job.PipelineID())
	}
	if isBranch, known := job.IsBranch(); !known || !isBranch {
		t.Fatalf("IsBranch() = %v, %v", isBranch, known)
	}
	if got := job.Script(); strings.Join(got, "|") != "make|make check" {
		t.Fatalf("Script() = %q", got)
	}
	if got := job.AfterScript(); len(got) != 1 || got[0] != "echo cleanup" {
		t.Fatalf("AfterScript() = %q", got)
	}
	if v, ok := job.Variable("GO_VAR"); !ok || v != "from the test" {
		t.Fatalf("Variable(GO_VAR) = %q, %v", v, ok)
	}
	if _, ok := job.Variable("NOT_SENT"); ok {
		t.Fatal("Variable(NOT_SENT) found")
	}
	if v, _ := job.Variable("CI_JOB_TOKEN"); v != job.Token() || v == "" {
		t.Fatal("CI_JOB_TOKEN is not the job token")
	}
	byKey := map[string]Variable{}
	for _, v := range job.Variables() {
		byKey[v.Key] = v
	}
	if v := byKey["SECRET_PASSWORD"]; !v.Masked || v.Public || v.Value == "" {
		t.Fatalf("SECRET_PASSWORD = %+v", v)
	}
	if v := byKey["DEPLOY_CONFIG"]; !v.File || !strings.Contains(v.Value, "port=2222") {
		t.Fatalf("DEPLOY_CONFIG = %+v", v)
	}
	if v := byKey["RAW_VALUE"]; !v.Raw {
		t.Fatalf("RAW_VALUE = %+v", v)
	}
	if v := byKey["GO_VAR"]; !v.Public || v.Masked {
		t.Fatalf("GO_VAR = %+v", v)
	}
	payload, err := job.Payload()
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(payload, &parsed); err != nil || parsed.ID != job.ID() {
		t.Fatalf("Payload(): id %d, %v", parsed.ID, err)
	}
	timeout, known := job.Timeout()
	deadline, dknown := job.Deadline()
	if !known || !dknown || timeout <= 0 {
		t.Fatalf("Timeout() %v %v, Deadline() %v %v", timeout, known, deadline, dknown)
	}
	if d := time.Until(deadline) - timeout; d > 5*time.Second || d < -5*time.Second {
		t.Fatalf("Deadline() %v is not about now + Timeout() %v", deadline, timeout)
	}
	if !job.Acknowledged() || job.State() != StateRunning || job.IsWatcher() {
		t.Fatalf("acknowledged %v, state %v, watcher %v", job.Acknowledged(), job.State(), job.IsWatcher())
	}

	// The log through io.Writer: fmt, io.Copy, and a masked secret.
	fmt.Fprintf(job, "Running job %d on %s\n", job.ID(), job.Ref())
	for _, line := range job.Script() {
		fmt.Fprintf(job, "$ %s\n", line)
	}
	if _, err := io.Copy(job, strings.NewReader("output line 1\noutput line 2\n")); err != nil {
		t.Fatal(err)
	}
	secret := byKey["SECRET_PASSWORD"].Value
	fmt.Fprintf(job, "password is %s\n", secret)
	want := fmt.Sprintf("Running job %d on %s\n$ make\n$ make check\noutput line 1\noutput line 2\npassword is [MASKED]\n", job.ID(), job.Ref())
	if log, err := job.Log(); err != nil || log != want {
		t.Fatalf("Log() = %q, %v; want %q", log, err, want)
	}
	canceled := job.Canceled()
	if err := job.SetSuccess(); err != nil {
		t.Fatalf("SetSuccess: %v", err)
	}
	if job.State() != StateSuccess {
		t.Fatalf("State() = %v after SetSuccess", job.State())
	}
	rec := expectFinal(t, job.ID(), "success", true)
	if got := rec.trace(t); got != want {
		t.Fatalf("server trace %q, want %q", got, want)
	}
	if strings.Contains(rec.trace(t), secret) {
		t.Fatal("the secret reached the server unmasked")
	}
	// The job is over: the cancel channel closes without a value.
	if s, ok := next(t, canceled, 5*time.Second); ok {
		t.Fatalf("Canceled() delivered %v for a job that succeeded", s)
	}
	// Reporting twice is refused, with the job's own message.
	err = job.SetSuccess()
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrAlreadyFinished) || e.Message == "" {
		t.Fatalf("second SetSuccess: %#v", err)
	}
}

func TestFailedWithExitCode(t *testing.T) {
	r, tag := registerRunner(t, nil)
	job := takeJob(t, r, tag, nil)
	fmt.Fprintln(job, "make: *** [all] Error 2")
	if err := job.SetFailed(FailureScript, 2); err != nil {
		t.Fatalf("SetFailed: %v", err)
	}
	rec := expectFinal(t, job.ID(), "failed", true)
	if rec.FailureReason != "script_failure" || rec.ExitCode == nil || *rec.ExitCode != 2 {
		t.Fatalf("server: reason %q exit code %v", rec.FailureReason, rec.ExitCode)
	}
	if FailureScript.String() != "script_failure" {
		t.Fatalf("FailureScript.String() = %q", FailureScript.String())
	}
}
