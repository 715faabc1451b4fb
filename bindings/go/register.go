package glr

// #include <stdlib.h>
// #include <gitlab_runner_api.h>
import "C"

import "time"

// RegisterOptions are what Register sends besides the token. Zero values are not sent (GitLab's
// defaults apply); the *bool fields are sent when non-nil (see Bool).
type RegisterOptions struct {
	Description     string
	MaintenanceNote string
	Tags            []string
	Active          *bool // the Python package's active (sent as paused = !active)
	Paused          *bool
	Locked          *bool
	RunUntagged     *bool
	MaximumTimeout  time.Duration // at least 10 minutes when set
	AccessLevel     string        // "not_protected" or "ref_protected"
	// info.*: the runner software's description (defaults: this library's name and version, the
	// OS and architecture).
	Name, Version, Revision, Platform, Architecture, Executor string
}

// Bool returns a pointer to b, for the *bool fields of RegisterOptions.
func Bool(b bool) *bool { return &b }

// Register registers a new runner with a registration token (the legacy workflow; GitLab
// replaces it with runners created in its UI: see FromToken). opts may be nil.
func Register(apiURL, registrationToken string, opts *RegisterOptions) (*Runner, error) {
	if opts == nil {
		opts = &RegisterOptions{}
	}
	url, err := cString("apiURL", apiURL)
	if err != nil {
		return nil, err
	}
	defer freeCString(url)
	token, err := cString("registrationToken", registrationToken)
	if err != nil {
		return nil, err
	}
	defer freeCString(token)
	var out *C.glr_runner
	var argErr error
	err = withThreadError(func() C.glr_status {
		var o *C.glr_register_options
		if st := C.glr_register_options_new(&o); st != C.GLR_OK {
			return st
		}
		defer C.glr_register_options_free(o) // does not touch the thread's last error
		st, e := opts.apply(o)
		if e != nil || st != C.GLR_OK {
			argErr = e
			return st
		}
		return C.glr_runner_register(url, token, o, &out)
	})
	if argErr != nil {
		return nil, argErr
	}
	if err != nil {
		return nil, err
	}
	return newRunner(out), nil
}

// apply sets the options on o: the first failing setter's status, or an argument the binding
// refuses itself (a NUL byte in a string) as error.
func (opts *RegisterOptions) apply(o *C.glr_register_options) (C.glr_status, error) {
	type setter func(*C.glr_register_options, *C.char) C.glr_status
	strs := []struct {
		name, value string
		set         setter
	}{
		{"Description", opts.Description, func(o *C.glr_register_options, v *C.char) C.glr_status {
			return C.glr_register_options_set_description(o, v)
		}},
		{"MaintenanceNote", opts.MaintenanceNote, func(o *C.glr_register_options, v *C.char) C.glr_status {
			return C.glr_register_options_set_maintenance_note(o, v)
		}},
		{"Name", opts.Name, func(o *C.glr_register_options, v *C.char) C.glr_status {
			return C.glr_register_options_set_name(o, v)
		}},
		{"Version", opts.Version, func(o *C.glr_register_options, v *C.char) C.glr_status {
			return C.glr_register_options_set_version(o, v)
		}},
		{"Revision", opts.Revision, func(o *C.glr_register_options, v *C.char) C.glr_status {
			return C.glr_register_options_set_revision(o, v)
		}},
		{"Platform", opts.Platform, func(o *C.glr_register_options, v *C.char) C.glr_status {
			return C.glr_register_options_set_platform(o, v)
		}},
		{"Architecture", opts.Architecture, func(o *C.glr_register_options, v *C.char) C.glr_status {
			return C.glr_register_options_set_architecture(o, v)
		}},
		{"Executor", opts.Executor, func(o *C.glr_register_options, v *C.char) C.glr_status {
			return C.glr_register_options_set_executor(o, v)
		}},
		{"AccessLevel", opts.AccessLevel, func(o *C.glr_register_options, v *C.char) C.glr_status {
			return C.glr_register_options_set_access_level(o, v)
		}},
	}
	for _, tag := range opts.Tags {
		strs = append(strs, struct {
			name, value string
			set         setter
		}{"Tags", tag, func(o *C.glr_register_options, v *C.char) C.glr_status {
			return C.glr_register_options_add_tag(o, v)
		}})
	}
	for _, s := range strs {
		if s.value == "" && s.name != "Tags" {
			continue
		}
		v, err := cString(s.name, s.value)
		if err != nil {
			return C.GLR_ERR_INVALID_ARGUMENT, err
		}
		st := s.set(o, v)
		freeCString(v)
		if st != C.GLR_OK {
			return st, nil
		}
	}
	flags := []struct {
		value *bool
		set   func(*C.glr_register_options, C.int32_t) C.glr_status
	}{
		{opts.Active, func(o *C.glr_register_options, v C.int32_t) C.glr_status {
			return C.glr_register_options_set_active(o, v)
		}},
		{opts.Paused, func(o *C.glr_register_options, v C.int32_t) C.glr_status {
			return C.glr_register_options_set_paused(o, v)
		}},
		{opts.Locked, func(o *C.glr_register_options, v C.int32_t) C.glr_status {
			return C.glr_register_options_set_locked(o, v)
		}},
		{opts.RunUntagged, func(o *C.glr_register_options, v C.int32_t) C.glr_status {
			return C.glr_register_options_set_run_untagged(o, v)
		}},
	}
	for _, f := range flags {
		if f.value == nil {
			continue
		}
		if st := f.set(o, cBool(*f.value)); st != C.GLR_OK {
			return st, nil
		}
	}
	if opts.MaximumTimeout != 0 {
		seconds := C.int64_t(opts.MaximumTimeout / time.Second)
		if st := C.glr_register_options_set_maximum_timeout(o, seconds); st != C.GLR_OK {
			return st, nil
		}
	}
	return C.GLR_OK, nil
}

func cBool(b bool) C.int32_t {
	if b {
		return 1
	}
	return 0
}
