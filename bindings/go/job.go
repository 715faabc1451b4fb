package glr

// #include <stdlib.h>
// #include <gitlab_runner_api.h>
import "C"

import (
	"encoding/json"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Job is a job taken from GitLab (a glr_job): from Runner.RequestJob, LoadJob/LoadsJob (the
// owner of the job's log) or WatchLoad/WatchLoads (a watcher). It is an io.Writer appending to
// the job's log. Call Close when done (see the package documentation).
type Job struct {
	// c is everything the job's goroutines use, so that the finalizer set on Job can run
	// while Canceled's goroutine still waits.
	c *jobCore
}

type jobCore struct {
	h   handle
	ptr *C.glr_job

	watchMu  sync.Mutex
	canceled chan State // made by the first Canceled call
	events   *os.File   // our duplicate of the job's event descriptor, while it is watched
}

func newJob(p *C.glr_job) *Job {
	j := &Job{c: &jobCore{h: newHandle(), ptr: p}}
	runtime.SetFinalizer(j, (*Job).Close) // a safety net only: call Close
	return j
}

// LoadsJob restores a job from Dumps or HandOverDumps output (or the Python package's format):
// this handle owns the job's log, which continues where GitLab's copy ends. Offline.
func LoadsJob(data string) (*Job, error) {
	return loadJob("data", data, func(s *C.char, out **C.glr_job) C.glr_status { return C.glr_job_loads(s, out) })
}

// LoadJob is LoadsJob from a file written by Dump or HandOverDump.
func LoadJob(path string) (*Job, error) {
	return loadJob("path", path, func(s *C.char, out **C.glr_job) C.glr_status { return C.glr_job_load(s, out) })
}

// WatchLoads makes a watcher from a dump: it keeps the job alive at GitLab and learns cancels
// while another handle writes the log (log methods return ErrNotOwner).
func WatchLoads(data string) (*Job, error) {
	return loadJob("data", data, func(s *C.char, out **C.glr_job) C.glr_status { return C.glr_job_watch_loads(s, out) })
}

// WatchLoad is WatchLoads from a file.
func WatchLoad(path string) (*Job, error) {
	return loadJob("path", path, func(s *C.char, out **C.glr_job) C.glr_status { return C.glr_job_watch_load(s, out) })
}

func loadJob(name, arg string, load func(*C.char, **C.glr_job) C.glr_status) (*Job, error) {
	s, err := cString(name, arg)
	if err != nil {
		return nil, err
	}
	defer freeCString(s)
	var out *C.glr_job
	if err := withThreadError(func() C.glr_status { return load(s, &out) }); err != nil {
		return nil, err
	}
	return newJob(out), nil
}

// Close frees the job: it waits for calls in progress on other goroutines to return (each is
// bounded by SetCallTimeout), stops Canceled's goroutine (its channel is closed), and frees the
// handle. Nothing more of the job reaches GitLab from this handle and log text GitLab has not
// acknowledged is dropped: finish, Flush or hand the job over first. Closing twice is harmless.
func (j *Job) Close() error {
	runtime.SetFinalizer(j, nil)
	j.c.close()
	return nil
}

func (c *jobCore) close() {
	c.h.close(func() {
		c.stopWatching() // a Read of the event descriptor ends at once
	}, func() {
		C.glr_job_free(c.ptr)
	})
}

// call runs f on the live handle and turns a failure into an *Error with the job's own last
// message (between: see Runner.call).
func (c *jobCore) call(between func(), f func(p *C.glr_job) C.glr_status) error {
	if !c.h.enter() {
		return ErrClosed
	}
	defer c.h.leave()
	st := f(c.ptr)
	if st == C.GLR_OK {
		return nil
	}
	if between != nil {
		between()
	}
	return &Error{Status: Status(st), Message: c.lastErrorLocked()}
}

func (c *jobCore) lastErrorLocked() string {
	return readMessage(func(buf *C.char, n C.size_t) C.size_t { return C.glr_job_last_error_message(c.ptr, buf, n) })
}

// call is jobCore.call keeping j reachable to the end (so its finalizer cannot close the
// handle under a call).
func (j *Job) call(f func(p *C.glr_job) C.glr_status) error {
	err := j.c.call(nil, f)
	runtime.KeepAlive(j)
	return err
}

// withString passes s as a C string to f (refusing a NUL byte).
func (j *Job) withString(name, s string, f func(p *C.glr_job, cs *C.char) C.glr_status) error {
	cs, err := cString(name, s)
	if err != nil {
		return err
	}
	defer freeCString(cs)
	return j.call(func(p *C.glr_job) C.glr_status { return f(p, cs) })
}

// read runs a getter on the live handle; false after Close.
func (j *Job) read(f func(p *C.glr_job)) bool {
	if !j.c.h.enter() {
		return false
	}
	defer j.c.h.leave()
	f(j.c.ptr)
	runtime.KeepAlive(j)
	return true
}

func (j *Job) getString(f func(p *C.glr_job) *C.char) (s string) {
	j.read(func(p *C.glr_job) { s = borrowed(f(p)) })
	return s
}

// LastErrorMessage is the message of the last failed call on this job, whichever goroutine made
// it ("" if none failed yet). Errors returned by the methods already carry it.
func (j *Job) LastErrorMessage() (s string) {
	j.read(func(*C.glr_job) { s = j.c.lastErrorLocked() })
	return s
}

// ---- the log -----------------------------------------------------------------------------------

// Write appends p to the job's log (io.Writer): secrets are masked, invalid UTF-8 replaced. It
// never waits for the network; the background uploads the text. Errors: ErrNotOwner (a
// watcher or a handed-over job), ErrAlreadyFinished, ErrJobCanceled.
func (j *Job) Write(p []byte) (int, error) {
	var data *C.char
	if len(p) > 0 {
		data = (*C.char)(unsafe.Pointer(&p[0])) // read during the call only, no Go pointers inside
	}
	if err := j.call(func(h *C.glr_job) C.glr_status { return C.glr_job_log_append(h, data, C.size_t(len(p))) }); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush uploads everything written so far and returns when GitLab acknowledged all of it (or
// the call timeout ran out). Nothing written is lost on error: the background keeps sending.
func (j *Job) Flush() error {
	return j.call(func(p *C.glr_job) C.glr_status { return C.glr_job_log_flush(p) })
}

// Log is the whole log as stored (a watcher has it as it was when handed over).
func (j *Job) Log() (string, error) {
	var out *C.char
	var n C.size_t
	if err := j.call(func(p *C.glr_job) C.glr_status { return C.glr_job_log(p, &out, &n) }); err != nil {
		return "", err
	}
	return string(takeBytes(out, n)), nil
}

// SetLogLimit caps the job's log at limit bytes (default 100 MiB, at least 1024).
func (j *Job) SetLogLimit(limit int) error {
	if limit < 0 {
		return invalid("SetLogLimit: negative limit")
	}
	return j.call(func(p *C.glr_job) C.glr_status { return C.glr_job_set_log_limit(p, C.size_t(limit)) })
}

// ---- talking to GitLab -------------------------------------------------------------------------

// Auth is a keep-alive and cancel check; afterwards State tells whether GitLab asks to cancel.
func (j *Job) Auth() error {
	return j.call(func(p *C.glr_job) C.glr_status { return C.glr_job_auth(p) })
}

// SetSuccess reports the job successful: uploads the whole log, then the final update with the
// log's checksum. On error the job stays running (repeat the call or fail the job).
func (j *Job) SetSuccess() error {
	return j.call(func(p *C.glr_job) C.glr_status { return C.glr_job_set_success(p, nil) })
}

// SetFailed reports the job failed with reason and the script's exit code (0: none sent).
func (j *Job) SetFailed(reason FailureReason, exitCode int) error {
	return j.call(func(p *C.glr_job) C.glr_status {
		if exitCode != 0 {
			if st := C.glr_job_set_exit_code(p, C.int32_t(exitCode)); st != C.GLR_OK {
				return st
			}
		}
		return C.glr_job_set_failed(p, C.glr_failure_reason(reason), nil)
	})
}

// SetCallTimeout bounds every network call of the job from now on (Flush, Auth, SetSuccess,
// SetFailed, HandOverDump(s)): ErrTimeout once d has passed. 0 restores the default (5 minutes).
func (j *Job) SetCallTimeout(d time.Duration) error {
	if d < 0 {
		return invalid("SetCallTimeout: negative duration")
	}
	return j.call(func(p *C.glr_job) C.glr_status { return C.glr_job_set_call_timeout(p, C.int64_t(d/time.Millisecond)) })
}

// SetKeepaliveInterval sets how long the job may stay silent before the background sends a
// keep-alive (default 30 s; 1 s to 45 min, whole seconds).
func (j *Job) SetKeepaliveInterval(d time.Duration) error {
	return j.call(func(p *C.glr_job) C.glr_status {
		return C.glr_job_set_keepalive_interval(p, C.int64_t(d/time.Second))
	})
}

// ---- persistence -------------------------------------------------------------------------------

// Dumps serialises the job (it holds tokens and secret variables: keep it secret). A snapshot:
// this handle stays the owner and keeps uploading; use HandOverDumps to pass the job on.
func (j *Job) Dumps() (string, error) {
	var out *C.char
	if err := j.call(func(p *C.glr_job) C.glr_status { return C.glr_job_dumps(p, &out) }); err != nil {
		return "", err
	}
	return takeString(out), nil
}

// Dump writes Dumps output to path, atomically and with mode 0600.
func (j *Job) Dump(path string) error {
	return j.withString("path", path, func(p *C.glr_job, cs *C.char) C.glr_status { return C.glr_job_dump(p, cs) })
}

// HandOverDumps hands the job over to whoever loads the result with LoadsJob: this handle
// becomes a watcher (log methods return ErrNotOwner; it still keeps the job alive, learns
// cancels and may fail the job). The next owner sends every byte this one did not get
// acknowledged, exactly once.
func (j *Job) HandOverDumps() (string, error) {
	var out *C.char
	if err := j.call(func(p *C.glr_job) C.glr_status { return C.glr_job_hand_over_dumps(p, &out) }); err != nil {
		return "", err
	}
	return takeString(out), nil
}

// HandOverDump is HandOverDumps writing the dump to path (atomically, mode 0600) for LoadJob.
func (j *Job) HandOverDump(path string) error {
	return j.withString("path", path, func(p *C.glr_job, cs *C.char) C.glr_status { return C.glr_job_hand_over_dump(p, cs) })
}

// IsWatcher tells whether this handle no longer writes the job's log.
func (j *Job) IsWatcher() (watcher bool) {
	j.read(func(p *C.glr_job) { watcher = C.glr_job_is_watcher(p) == 1 })
	return watcher
}

// ---- properties --------------------------------------------------------------------------------

// ID is the job's id.
func (j *Job) ID() (id int64) {
	j.read(func(p *C.glr_job) { id = int64(C.glr_job_id(p)) })
	return id
}

// State is the job's state, learned from GitLab's answers (see also Canceled); StateUnknown
// after Close.
func (j *Job) State() State {
	s := StateUnknown
	j.read(func(p *C.glr_job) { s = State(C.glr_job_state(p)) })
	return s
}

// Token is the job token (a secret: CI_JOB_TOKEN).
func (j *Job) Token() string {
	return j.getString(func(p *C.glr_job) *C.char { return C.glr_job_token(p) })
}

// Name is job_info.name ("" when GitLab did not send it; so are the other properties).
func (j *Job) Name() string {
	return j.getString(func(p *C.glr_job) *C.char { return C.glr_job_name(p) })
}

// Stage is job_info.stage.
func (j *Job) Stage() string {
	return j.getString(func(p *C.glr_job) *C.char { return C.glr_job_stage(p) })
}

// Ref is the branch or tag name.
func (j *Job) Ref() string {
	return j.getString(func(p *C.glr_job) *C.char { return C.glr_job_ref(p) })
}

// RepoURL is git_info.repo_url (it embeds the job token: never log it).
func (j *Job) RepoURL() string {
	return j.getString(func(p *C.glr_job) *C.char { return C.glr_job_repo_url(p) })
}

// CommitSHA is git_info.sha.
func (j *Job) CommitSHA() string {
	return j.getString(func(p *C.glr_job) *C.char { return C.glr_job_commit_sha(p) })
}

// CommitMessage is CI_COMMIT_MESSAGE.
func (j *Job) CommitMessage() string {
	return j.getString(func(p *C.glr_job) *C.char { return C.glr_job_commit_message(p) })
}

// Username is GITLAB_USER_LOGIN.
func (j *Job) Username() string {
	return j.getString(func(p *C.glr_job) *C.char { return C.glr_job_username(p) })
}

// ProjectURL is CI_PROJECT_URL.
func (j *Job) ProjectURL() string {
	return j.getString(func(p *C.glr_job) *C.char { return C.glr_job_project_url(p) })
}

// ProjectPath is CI_PROJECT_PATH ("group/project").
func (j *Job) ProjectPath() string {
	return j.getString(func(p *C.glr_job) *C.char { return C.glr_job_project_path(p) })
}

// ProjectName is CI_PROJECT_NAME.
func (j *Job) ProjectName() string {
	return j.getString(func(p *C.glr_job) *C.char { return C.glr_job_project_name(p) })
}

// JobURL is CI_JOB_URL.
func (j *Job) JobURL() string {
	return j.getString(func(p *C.glr_job) *C.char { return C.glr_job_job_url(p) })
}

// PipelineURL is CI_PIPELINE_URL.
func (j *Job) PipelineURL() string {
	return j.getString(func(p *C.glr_job) *C.char { return C.glr_job_pipeline_url(p) })
}

// PipelineID is the pipeline id as GitLab sends it, as text.
func (j *Job) PipelineID() string {
	return j.getString(func(p *C.glr_job) *C.char { return C.glr_job_pipeline_id(p) })
}

// IsBranch tells whether the job runs for a branch (false: a tag); known is false when GitLab
// did not say.
func (j *Job) IsBranch() (isBranch, known bool) {
	v := C.int32_t(-1)
	j.read(func(p *C.glr_job) { v = C.glr_job_is_branch(p) })
	return v == 1, v >= 0
}

// Timeout is how long GitLab gives the job (its timeout:, within the runner's maximum);
// known is false when GitLab did not say.
func (j *Job) Timeout() (timeout time.Duration, known bool) {
	s := int64(-1)
	j.read(func(p *C.glr_job) { s = int64(C.glr_job_timeout(p)) })
	return time.Duration(s) * time.Second, s >= 0
}

// Deadline is when GitLab stops the job (taken at plus Timeout); its token expires 5 minutes
// later. known is false when unknown.
func (j *Job) Deadline() (deadline time.Time, known bool) {
	s := int64(-1)
	j.read(func(p *C.glr_job) { s = int64(C.glr_job_deadline(p)) })
	if s < 0 {
		return time.Time{}, false
	}
	return time.Unix(s, 0), true
}

// Acknowledged tells whether GitLab has acknowledged the job (the two-phase commit).
func (j *Job) Acknowledged() (ack bool) {
	j.read(func(p *C.glr_job) { ack = C.glr_job_acknowledged(p) == 1 })
	return ack
}

// Script is the job's script lines (of every step named "script").
func (j *Job) Script() (lines []string) {
	j.read(func(p *C.glr_job) {
		n := int(C.glr_job_script_count(p))
		lines = make([]string, n)
		for i := range lines {
			lines[i] = borrowed(C.glr_job_script_line(p, C.size_t(i)))
		}
	})
	return lines
}

// AfterScript is the job's after_script lines (none when the job has no such step).
func (j *Job) AfterScript() (lines []string) {
	j.read(func(p *C.glr_job) {
		n := int(C.glr_job_after_script_count(p))
		lines = make([]string, n)
		for i := range lines {
			lines[i] = borrowed(C.glr_job_after_script_line(p, C.size_t(i)))
		}
	})
	return lines
}

// Variables are the variables GitLab sent, in its order.
func (j *Job) Variables() (vars []Variable) {
	j.read(func(p *C.glr_job) {
		n := int(C.glr_job_variable_count(p))
		vars = make([]Variable, n)
		for i := range vars {
			k := C.size_t(i)
			flags := C.glr_job_variable_flags(p, k)
			vars[i] = Variable{
				Key:    borrowed(C.glr_job_variable_key(p, k)),
				Value:  borrowed(C.glr_job_variable_value(p, k)),
				Public: flags&C.GLR_VAR_PUBLIC != 0,
				Masked: flags&C.GLR_VAR_MASKED != 0,
				File:   flags&C.GLR_VAR_FILE != 0,
				Raw:    flags&C.GLR_VAR_RAW != 0,
			}
		}
	})
	return vars
}

// Variable is the value of the variable named key (the last one if repeated); ok is false
// when GitLab did not send it.
func (j *Job) Variable(key string) (value string, ok bool) {
	k, err := cString("key", key)
	if err != nil {
		return "", false
	}
	defer freeCString(k)
	j.read(func(p *C.glr_job) {
		if v := C.glr_job_variable(p, k); v != nil {
			value, ok = C.GoString(v), true
		}
	})
	return value, ok
}

// Payload is the job exactly as GitLab sent it (JSON), for everything without a method
// (image, services, cache, artifacts...).
func (j *Job) Payload() (json.RawMessage, error) {
	var out *C.char
	if err := j.call(func(p *C.glr_job) C.glr_status { return C.glr_job_payload(p, &out) }); err != nil {
		return nil, err
	}
	return json.RawMessage(takeString(out)), nil
}

// RegistryCredential is the job's registry credential for pulling image (ErrNotFound when it
// has none).
func (j *Job) RegistryCredential(image string) (username, password string, err error) {
	var u, pw *C.char
	err = j.withString("image", image, func(p *C.glr_job, cs *C.char) C.glr_status {
		return C.glr_job_get_registry_credential(p, cs, &u, &pw)
	})
	if err != nil {
		return "", "", err
	}
	return takeString(u), takeString(pw), nil
}
