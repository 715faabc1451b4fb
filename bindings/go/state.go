package glr

// #include <gitlab_runner_api.h>
import "C"

import "strconv"

// State is a job's state as the library knows it from GitLab's answers.
type State int32

// The job states.
const (
	StateRunning   State = C.GLR_JOB_RUNNING
	StateSuccess   State = C.GLR_JOB_SUCCESS
	StateFailed    State = C.GLR_JOB_FAILED
	StateCanceling State = C.GLR_JOB_CANCELING // graceful cancel: run your after_script, then finish the job
	StateCanceled  State = C.GLR_JOB_CANCELED  // hard cancel: calls that report to GitLab return ErrJobCanceled
	StateUnknown   State = -1                  // a closed job
)

func (s State) String() string {
	switch s {
	case StateRunning:
		return "running"
	case StateSuccess:
		return "success"
	case StateFailed:
		return "failed"
	case StateCanceling:
		return "canceling"
	case StateCanceled:
		return "canceled"
	case StateUnknown:
		return "unknown"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// final tells whether nothing follows s (the job is over).
func (s State) final() bool {
	return s == StateSuccess || s == StateFailed || s == StateCanceled
}

// FailureReason is why a job failed, in GitLab's numbering (mapped to what the job's GitLab
// accepts).
type FailureReason int32

// The failure reasons.
const (
	FailureUnknown                  FailureReason = C.GLR_FAILURE_UNKNOWN
	FailureScript                   FailureReason = C.GLR_FAILURE_SCRIPT
	FailureAPI                      FailureReason = C.GLR_FAILURE_API
	FailureStuckOrTimeout           FailureReason = C.GLR_FAILURE_STUCK_OR_TIMEOUT
	FailureRunnerSystem             FailureReason = C.GLR_FAILURE_RUNNER_SYSTEM
	FailureMissingDependency        FailureReason = C.GLR_FAILURE_MISSING_DEPENDENCY
	FailureRunnerUnsupported        FailureReason = C.GLR_FAILURE_RUNNER_UNSUPPORTED
	FailureJobExecutionTimeout      FailureReason = C.GLR_FAILURE_JOB_EXECUTION_TIMEOUT
	FailureRunnerConfigurationError FailureReason = C.GLR_FAILURE_RUNNER_CONFIGURATION_ERROR
	FailureRunnerExternalDependency FailureReason = C.GLR_FAILURE_RUNNER_EXTERNAL_DEPENDENCY
	FailureRunnerInterrupted        FailureReason = C.GLR_FAILURE_RUNNER_INTERRUPTED
)

// String is GitLab's name of the reason ("script_failure"...).
func (f FailureReason) String() string {
	if p := C.glr_failure_reason_str(C.glr_failure_reason(f)); p != nil {
		return C.GoString(p)
	}
	return "FailureReason(" + strconv.Itoa(int(f)) + ")"
}

// Variable is one of the job's CI/CD variables, as GitLab sent it.
type Variable struct {
	Key, Value string
	Public     bool // not secret
	Masked     bool // masked in the job log
	File       bool // a file variable: Value is the file's content
	Raw        bool // must not be expanded
}
