module gitlab_runner_api/bindings/go

go 1.19
