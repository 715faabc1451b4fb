package glr

// #include <gitlab_runner_api.h>
import "C"

import (
	"bufio"
	"io"
	"os"
	"sync"
	"syscall"
)

// LogLevel is a diagnostics level: a writer gets lines of its level and more severe ones.
type LogLevel int32

// The levels, most severe first.
const (
	LogError LogLevel = C.GLR_LOG_ERROR
	LogWarn  LogLevel = C.GLR_LOG_WARN
	LogInfo  LogLevel = C.GLR_LOG_INFO
	LogDebug LogLevel = C.GLR_LOG_DEBUG
)

// diagnostics is the process's one pipe from the library to the writer. It is made once and
// never closed: glr_set_log_fd gives no point after which the library is sure not to write to
// a descriptor it was given before, so closing one could send a late line into whatever file
// later reuses its number.
var diagnostics struct {
	once    sync.Once
	err     error
	writeFD int        // the library writes here
	setting sync.Mutex // one SetLogWriter at a time: the level and the writer go together
	mu      sync.Mutex
	w       io.Writer // where the reading goroutine copies lines; nil: dropped
}

// SetLogWriter sends the library's diagnostics at level and more severe to w, one line per
// Write ("gitlab_runner_api: <level>: <message>\n"); nil turns them off. It works without
// callbacks: the library writes to a pipe (never blocking: a line the pipe cannot take at
// once is dropped) and a goroutine copies the lines to w. w is called from that goroutine
// only, one line at a time; a slow w delays no upload (lines are dropped instead). When
// SetLogWriter returns, the previous writer is not called any more. While a writer is set,
// GLR_LOG's stderr lines stop.
func SetLogWriter(w io.Writer, level LogLevel) error {
	d := &diagnostics
	d.once.Do(startDiagnostics)
	d.setting.Lock()
	defer d.setting.Unlock()
	if d.err != nil {
		return d.err
	}
	if w == nil {
		d.mu.Lock()
		d.w = nil
		d.mu.Unlock()
		return withThreadError(func() C.glr_status { return C.glr_set_log_fd(-1, 0) })
	}
	if err := withThreadError(func() C.glr_status { return C.glr_set_log_fd(C.int32_t(d.writeFD), C.int32_t(level)) }); err != nil {
		return err
	}
	d.mu.Lock()
	d.w = w
	d.mu.Unlock()
	return nil
}

// startDiagnostics makes the pipe (both ends non-blocking and close-on-exec: the library
// never waits on it, the reader waits in the netpoller) and starts the reading goroutine.
func startDiagnostics() {
	d := &diagnostics
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		d.err = &Error{Status: ErrIO, Message: "SetLogWriter: pipe: " + err.Error()}
		return
	}
	d.writeFD = fds[1]
	go copyDiagnostics(os.NewFile(uintptr(fds[0]), "glr-diagnostics"))
}

func copyDiagnostics(r *os.File) {
	lines := bufio.NewReaderSize(r, 8192) // lines are at most 4000 bytes
	for {
		line, err := lines.ReadBytes('\n')
		if len(line) > 0 {
			d := &diagnostics
			d.mu.Lock()
			if d.w != nil {
				_, _ = d.w.Write(line)
			}
			d.mu.Unlock()
		}
		if err != nil {
			return // the pipe failed (nobody closes it): diagnostics stop, the library is unaffected
		}
	}
}
