package glr

// Runners: persistence, the new-workflow token, settings, and errors as Go errors.

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunnerDumpAndLoad(t *testing.T) {
	r, tag := registerRunner(t, nil)
	data, err := r.Dumps()
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Loads(data)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if r2.ID() != r.ID() || r2.Token() != r.Token() || r2.APIURL() != r.APIURL() || r2.SystemID() != r.SystemID() {
		t.Fatal("Loads(Dumps()) is another runner")
	}
	path := filepath.Join(t.TempDir(), "runner.json")
	if err := r.Dump(path); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("dump file: %v %v", st, err)
	}
	r3, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	if err := r3.CheckAuth(); err != nil {
		t.Fatalf("CheckAuth of the loaded runner: %v", err)
	}
	// The loaded runner takes jobs of its tag.
	job := takeJob(t, r3, tag, nil)
	if err := job.SetSuccess(); err != nil {
		t.Fatal(err)
	}
	expectFinal(t, job.ID(), "success", false)

	// A file that is not a runner: ErrParse / ErrIO, with the thread's message read on a
	// locked thread (no handle to ask).
	if _, err := Loads(`{"format":"something else"}`); !errors.Is(err, ErrParse) || err.(*Error).Message == "" {
		t.Fatalf("Loads(junk): %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, ErrIO) {
		t.Fatalf("Load(missing): %v", err)
	}
	if _, err := Loads("a\x00b"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Loads with a NUL byte: %v", err)
	}
}

func TestFromTokenAndAuthErrors(t *testing.T) {
	var created struct {
		ID    int64  `json:"id"`
		Token string `json:"token"`
	}
	control(t, "POST", "/__control/runners", map[string]interface{}{"description": "go from token"}, &created)
	r, err := FromToken(serverURL, created.Token)
	if err != nil {
		t.Fatalf("FromToken: %v", err)
	}
	defer r.Close()
	if r.ID() != created.ID {
		t.Fatalf("ID() = %d, want %d", r.ID(), created.ID)
	}
	if err := r.CheckAuth(); err != nil {
		t.Fatal(err)
	}

	bad := "glrt-not-a-token-the-server-knows"
	_, err = FromToken(serverURL, bad)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrAuth) || e.Status != ErrAuth || e.Message == "" {
		t.Fatalf("FromToken(bad token): %#v", err)
	}
	if strings.Contains(err.Error(), bad) {
		t.Fatalf("the error shows the token: %v", err)
	}
	if _, err := Register(serverURL, "not-a-registration-token", nil); !errors.Is(err, ErrAuth) {
		t.Fatalf("Register(bad token): %v", err)
	}
	// Options the library refuses (its message) and strings the binding refuses (a NUL byte).
	_, err = Register(serverURL, registrationToken, &RegisterOptions{AccessLevel: "bogus"})
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("Register(AccessLevel bogus): %v", err)
	}
	_, err = Register(serverURL, registrationToken, &RegisterOptions{Tags: []string{"a\x00b"}})
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "Tags") {
		t.Fatalf("Register(tag with NUL): %v", err)
	}
	if _, err := Register("http://127.0.0.1:1", registrationToken, nil); !errors.Is(err, ErrNetwork) {
		t.Fatalf("Register(nothing listening): %v", err)
	}
}

func TestRunnerSettingsAndErrors(t *testing.T) {
	r, _ := registerRunner(t, nil)
	if err := r.SetFeature("image", true); err != nil {
		t.Fatal(err)
	}
	err := r.SetFeature("Not A Feature", true)
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "Not A Feature") {
		t.Fatalf("SetFeature(bad name): %v", err)
	}
	if r.LastErrorMessage() != err.(*Error).Message {
		t.Fatalf("LastErrorMessage() %q, the error said %q", r.LastErrorMessage(), err.(*Error).Message)
	}
	before := r.SystemID()
	if err := r.SetSystemID(""); err != nil || r.SystemID() == before || r.SystemID() == "" {
		t.Fatalf("SetSystemID(\"\"): %v, %q -> %q", err, before, r.SystemID())
	}
	if err := r.SetSystemID("s_0123456789ab"); err != nil || r.SystemID() != "s_0123456789ab" {
		t.Fatalf("SetSystemID: %v, %q", err, r.SystemID())
	}
	if err := r.SetSystemID("nonsense"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("SetSystemID(nonsense): %v", err)
	}
	if err := r.SetLabel("team", "ci"); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveLabel("team"); err != nil {
		t.Fatal(err)
	}
	if err := r.SetCallTimeout(-1); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("SetCallTimeout(-1): %v", err)
	}
	// Status values are errors, and name themselves.
	if !strings.Contains(ErrTimeout.Error(), "time") {
		t.Fatalf("ErrTimeout.Error() = %q", ErrTimeout.Error())
	}

	// Closed: ErrClosed, zero values, Close twice is harmless.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.CheckAuth(); err != ErrClosed {
		t.Fatalf("CheckAuth after Close: %v", err)
	}
	if r.ID() != 0 || r.Token() != "" {
		t.Fatal("getters of a closed runner return values")
	}
	r.Close()
}

func TestVersion(t *testing.T) {
	if LibraryABIVersion() != ABIVersion || Version() == "" {
		t.Fatalf("library ABI %d version %q, header ABI %d", LibraryABIVersion(), Version(), ABIVersion)
	}
}
