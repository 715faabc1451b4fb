package glr_test

// The README's quick start, compiled by go test (not run: it needs a GitLab).

import (
	"context"
	"fmt"
	"log"
	"time"

	glr "gitlab_runner_api/bindings/go"
)

func Example() {
	if err := quickStart(context.Background(), "registration-token"); err != nil {
		log.Print(err)
	}
}

func quickStart(ctx context.Context, registrationToken string) error {
	runner, err := glr.Register("https://gitlab.example.com", registrationToken,
		&glr.RegisterOptions{Description: "my runner", Tags: []string{"hpc"}, Locked: glr.Bool(true)})
	if err != nil {
		return err
	}
	defer runner.Close()
	runner.Dump("my-runner.json")
	job, err := runner.RequestJob(ctx) // (nil, nil): no job now
	if err != nil || job == nil {
		return err
	}
	defer job.Close()
	fmt.Fprintf(job, "Running job %d for %s\n", job.ID(), job.Ref()) // a Job is an io.Writer
	for _, line := range job.Script() {
		_ = line // run it, write its output to job
	}
	select {
	case state := <-job.Canceled(): // StateCanceling (run after_script) or StateCanceled
		log.Printf("GitLab canceled the job: %v", state)
	default:
	}
	err = job.SetSuccess()    // or job.SetFailed(glr.FailureScript, exitCode)
	glr.Shutdown(time.Minute) // before the process exits: uploads what is pending
	return err
}
