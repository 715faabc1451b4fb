package glr

// #include <stdlib.h>
// #include <gitlab_runner_api.h>
import "C"

import (
	"runtime"
	"time"
)

// Runner is a registered GitLab runner (a glr_runner). Create it with Register, FromToken, Load
// or Loads; call Close when done (see the package documentation).
type Runner struct {
	h   handle
	ptr *C.glr_runner
}

func newRunner(p *C.glr_runner) *Runner {
	r := &Runner{h: newHandle(), ptr: p}
	runtime.SetFinalizer(r, (*Runner).Close) // a safety net only: call Close
	return r
}

// FromToken uses a runner created in GitLab: verifies its authentication token (glrt-...)
// and learns the runner's id.
func FromToken(apiURL, authenticationToken string) (*Runner, error) {
	url, err := cString("apiURL", apiURL)
	if err != nil {
		return nil, err
	}
	defer freeCString(url)
	token, err := cString("authenticationToken", authenticationToken)
	if err != nil {
		return nil, err
	}
	defer freeCString(token)
	var out *C.glr_runner
	if err := withThreadError(func() C.glr_status { return C.glr_runner_from_token(url, token, &out) }); err != nil {
		return nil, err
	}
	return newRunner(out), nil
}

// Loads restores a runner from Dumps output (or the Python package's format). Offline: call
// CheckAuth to verify the token.
func Loads(data string) (*Runner, error) {
	d, err := cString("data", data)
	if err != nil {
		return nil, err
	}
	defer freeCString(d)
	var out *C.glr_runner
	if err := withThreadError(func() C.glr_status { return C.glr_runner_loads(d, &out) }); err != nil {
		return nil, err
	}
	return newRunner(out), nil
}

// Load reads a runner from a file written by Dump. Offline. A runner loaded from a file writes
// a rotated token back to it.
func Load(path string) (*Runner, error) {
	p, err := cString("path", path)
	if err != nil {
		return nil, err
	}
	defer freeCString(p)
	var out *C.glr_runner
	if err := withThreadError(func() C.glr_status { return C.glr_runner_load(p, &out) }); err != nil {
		return nil, err
	}
	return newRunner(out), nil
}

// Close frees the runner. Calls in progress on other goroutines (a RequestJob in its long
// poll) are interrupted and return ErrInterrupted; later calls return ErrClosed. Jobs taken
// from the runner stay valid. Closing twice is harmless.
func (r *Runner) Close() error {
	runtime.SetFinalizer(r, nil)
	r.h.close(func() { C.glr_runner_interrupt(r.ptr) }, func() { C.glr_runner_free(r.ptr) })
	return nil
}

// call runs f on the live handle and turns a failure into an *Error with the runner's own
// last message. between, when not nil, runs between the call and reading the message (tests
// use it to let the scheduler move the goroutine).
func (r *Runner) call(between func(), f func(p *C.glr_runner) C.glr_status) error {
	if !r.h.enter() {
		return ErrClosed
	}
	defer r.h.leave()
	st := f(r.ptr)
	if st == C.GLR_OK {
		return nil
	}
	if between != nil {
		between()
	}
	return &Error{Status: Status(st), Message: r.lastErrorLocked()}
}

// lastErrorLocked reads glr_runner_last_error_message; the caller has entered the handle.
func (r *Runner) lastErrorLocked() string {
	return readMessage(func(buf *C.char, n C.size_t) C.size_t { return C.glr_runner_last_error_message(r.ptr, buf, n) })
}

// LastErrorMessage is the message of the last failed call on this runner, whichever goroutine
// made it ("" if none failed yet). Errors returned by the methods already carry it.
func (r *Runner) LastErrorMessage() string {
	if !r.h.enter() {
		return ""
	}
	defer r.h.leave()
	return r.lastErrorLocked()
}

// withString passes s as a C string to f (refusing a NUL byte).
func (r *Runner) withString(name, s string, f func(p *C.glr_runner, cs *C.char) C.glr_status) error {
	cs, err := cString(name, s)
	if err != nil {
		return err
	}
	defer freeCString(cs)
	return r.call(nil, func(p *C.glr_runner) C.glr_status { return f(p, cs) })
}

// Dumps serialises the runner (JSON; it holds the runner token: keep it secret).
func (r *Runner) Dumps() (string, error) {
	var out *C.char
	if err := r.call(nil, func(p *C.glr_runner) C.glr_status { return C.glr_runner_dumps(p, &out) }); err != nil {
		return "", err
	}
	return takeString(out), nil
}

// Dump writes Dumps output to path, atomically and with mode 0600.
func (r *Runner) Dump(path string) error {
	return r.withString("path", path, func(p *C.glr_runner, cs *C.char) C.glr_status { return C.glr_runner_dump(p, cs) })
}

// CheckAuth checks the runner's token with GitLab (ErrAuth when it is rejected).
func (r *Runner) CheckAuth() error {
	return r.call(nil, func(p *C.glr_runner) C.glr_status { return C.glr_runner_check_auth(p) })
}

// Unregister removes the runner from GitLab (for a glrt- runner: only this runner manager).
// The Runner must still be closed.
func (r *Runner) Unregister() error {
	return r.call(nil, func(p *C.glr_runner) C.glr_status { return C.glr_runner_unregister(p) })
}

// ResetToken rotates the runner's authentication token now (the library also does it by
// itself at 75 % of the token's lifetime). Dump the runner again unless it came from Load.
func (r *Runner) ResetToken() error {
	return r.call(nil, func(p *C.glr_runner) C.glr_status { return C.glr_runner_reset_token(p) })
}

// SetFeature declares whether your executor supports a feature GitLab gates jobs on
// (info.features, e.g. "image", "services", "refspecs").
func (r *Runner) SetFeature(name string, enabled bool) error {
	return r.withString("name", name, func(p *C.glr_runner, cs *C.char) C.glr_status {
		return C.glr_runner_set_feature(p, cs, cBool(enabled))
	})
}

// SetSystemID sets this runner manager's system_id ("s_" or "r_" and 12 letters or digits);
// "" makes a new random one. Give each process polling with copies of one runner its own.
func (r *Runner) SetSystemID(systemID string) error {
	cs, err := cStringOrNull("systemID", systemID)
	if err != nil {
		return err
	}
	defer freeCString(cs)
	return r.call(nil, func(p *C.glr_runner) C.glr_status { return C.glr_runner_set_system_id(p, cs) })
}

// SetLabel sets the runner label key to value (info.labels, persisted).
func (r *Runner) SetLabel(key, value string) error {
	return r.setLabel(nil, key, value)
}

// RemoveLabel removes the runner label key.
func (r *Runner) RemoveLabel(key string) error {
	return r.withString("key", key, func(p *C.glr_runner, k *C.char) C.glr_status {
		return C.glr_runner_set_label(p, k, nil)
	})
}

// setLabel is SetLabel with call's between hook.
func (r *Runner) setLabel(between func(), key, value string) error {
	k, err := cString("key", key)
	if err != nil {
		return err
	}
	defer freeCString(k)
	v, err := cString("value", value)
	if err != nil {
		return err
	}
	defer freeCString(v)
	return r.call(between, func(p *C.glr_runner) C.glr_status { return C.glr_runner_set_label(p, k, v) })
}

// SetCallTimeout bounds every network call of the runner from now on (RequestJob with its long
// poll, CheckAuth, Unregister): ErrTimeout once d has passed. 0 restores the default (5
// minutes); it is rounded down to milliseconds.
func (r *Runner) SetCallTimeout(d time.Duration) error {
	if d < 0 {
		return invalid("SetCallTimeout: negative duration")
	}
	return r.call(nil, func(p *C.glr_runner) C.glr_status {
		return C.glr_runner_set_call_timeout(p, C.int64_t(d/time.Millisecond))
	})
}

// getString reads a borrowed string getter ("" for NULL or a closed runner).
func (r *Runner) getString(f func(p *C.glr_runner) *C.char) string {
	if !r.h.enter() {
		return ""
	}
	defer r.h.leave()
	return borrowed(f(r.ptr))
}

// getTriState reads a 1/0/-1 getter as (value, known).
func (r *Runner) getTriState(f func(p *C.glr_runner) C.int32_t) (value, known bool) {
	if !r.h.enter() {
		return false, false
	}
	defer r.h.leave()
	v := f(r.ptr)
	return v == 1, v >= 0
}

// ID is the runner's id in GitLab (0 when GitLab did not say).
func (r *Runner) ID() int64 {
	if !r.h.enter() {
		return 0
	}
	defer r.h.leave()
	return int64(C.glr_runner_id(r.ptr))
}

// APIURL is GitLab's base URL, normalised (no trailing "/").
func (r *Runner) APIURL() string {
	return r.getString(func(p *C.glr_runner) *C.char { return C.glr_runner_api_url(p) })
}

// Token is the runner's current authentication token (a secret).
func (r *Runner) Token() string {
	return r.getString(func(p *C.glr_runner) *C.char { return C.glr_runner_token(p) })
}

// TokenExpiresAt is when the token expires (ISO 8601 as GitLab sent it), "" if it does not.
func (r *Runner) TokenExpiresAt() string {
	return r.getString(func(p *C.glr_runner) *C.char { return C.glr_runner_token_expires_at(p) })
}

// SystemID is this runner manager's system_id.
func (r *Runner) SystemID() string {
	return r.getString(func(p *C.glr_runner) *C.char { return C.glr_runner_system_id(p) })
}

// Description is the description given at registration ("" when unknown).
func (r *Runner) Description() string {
	return r.getString(func(p *C.glr_runner) *C.char { return C.glr_runner_description(p) })
}

// Name is info.name as set at registration ("" when unknown; so are Version, Revision,
// Platform, Architecture and Executor).
func (r *Runner) Name() string {
	return r.getString(func(p *C.glr_runner) *C.char { return C.glr_runner_name(p) })
}

// Version is info.version as set at registration.
func (r *Runner) Version() string {
	return r.getString(func(p *C.glr_runner) *C.char { return C.glr_runner_version(p) })
}

// Revision is info.revision as set at registration.
func (r *Runner) Revision() string {
	return r.getString(func(p *C.glr_runner) *C.char { return C.glr_runner_revision(p) })
}

// Platform is info.platform as set at registration.
func (r *Runner) Platform() string {
	return r.getString(func(p *C.glr_runner) *C.char { return C.glr_runner_platform(p) })
}

// Architecture is info.architecture as set at registration.
func (r *Runner) Architecture() string {
	return r.getString(func(p *C.glr_runner) *C.char { return C.glr_runner_architecture(p) })
}

// Executor is info.executor as set at registration.
func (r *Runner) Executor() string {
	return r.getString(func(p *C.glr_runner) *C.char { return C.glr_runner_executor(p) })
}

// Active tells whether the runner was registered active (not paused).
func (r *Runner) Active() (active, known bool) {
	return r.getTriState(func(p *C.glr_runner) C.int32_t { return C.glr_runner_active(p) })
}

// AccessLevel is the access level given at registration ("" when unknown).
func (r *Runner) AccessLevel() string {
	return r.getString(func(p *C.glr_runner) *C.char { return C.glr_runner_access_level(p) })
}

// Locked tells whether the runner was registered locked; known is false when not set.
func (r *Runner) Locked() (locked, known bool) {
	return r.getTriState(func(p *C.glr_runner) C.int32_t { return C.glr_runner_locked(p) })
}

// RunUntagged tells whether the runner was registered to run untagged jobs.
func (r *Runner) RunUntagged() (runUntagged, known bool) {
	return r.getTriState(func(p *C.glr_runner) C.int32_t { return C.glr_runner_run_untagged(p) })
}

// MaximumTimeout is the maximum job timeout given at registration; known is false when unset.
func (r *Runner) MaximumTimeout() (timeout time.Duration, known bool) {
	if !r.h.enter() {
		return 0, false
	}
	defer r.h.leave()
	s := int64(C.glr_runner_maximum_timeout(r.ptr))
	return time.Duration(s) * time.Second, s >= 0
}

// Tags are the tags the runner was registered with.
func (r *Runner) Tags() []string {
	if !r.h.enter() {
		return nil
	}
	defer r.h.leave()
	n := int(C.glr_runner_tag_count(r.ptr))
	tags := make([]string, 0, n)
	for i := 0; i < n; i++ {
		tags = append(tags, borrowed(C.glr_runner_tag(r.ptr, C.size_t(i))))
	}
	return tags
}
