// The C++ wrapper (include/gitlab_runner_api.hpp) without a network: errors become glr::Error
// with the status, function and message; handles move; getters give string_view / optional;
// script lines, variables and tags iterate; strings handed out are copied. Built and run by
// tests/header.rs; prints "wrapper ok" and exits 0 when every check passes.
#include "gitlab_runner_api.hpp"

#include <cstdlib>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

namespace {

int checks = 0;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::cerr << __FILE__ << ":" << __LINE__ << ": check failed: " #cond "\n";             \
            std::exit(1);                                                                          \
        }                                                                                          \
        ++checks;                                                                                  \
    } while (0)

// Runs `f`, which must throw glr::Error (or a subclass E) with `status` from `function`.
template <typename E = glr::Error, typename F> E expect_error(F f, glr_status status, const char *function) {
    try {
        f();
    } catch (const E &e) {
        CHECK(e.status() == status);
        CHECK(e.function() == function);
        CHECK(!e.message().empty());
        CHECK(std::string(e.what()).rfind(std::string(function) + ": ", 0) == 0);
        return e;
    }
    std::cerr << function << " did not throw\n";
    std::exit(1);
}

const char *const RUNNER_V1 = R"([1, "http://127.0.0.1:9/", 42, "runner-token", {"info": {"name": "wrapped", "executor": "custom"}, "description": "d", "locked": true, "run_untagged": false, "tag_list": "alpha,beta", "maximum_timeout": 3600}])";

const char *const JOB_V1 = R"([1, "[1, \"http://127.0.0.1:9\", 42, \"runner-token\", {\"info\": {}}]",
 {"id": 7, "token": "job-token",
  "job_info": {"name": "build", "stage": "test", "project_name": "p"},
  "git_info": {"ref": "main", "ref_type": "branch", "sha": "0123abcd", "repo_url": "http://127.0.0.1:9/g/p.git"},
  "variables": [
    {"key": "CI_PROJECT_PATH", "value": "g/p", "public": true, "masked": false},
    {"key": "SECRET", "value": "s3cr3t-value", "public": false, "masked": true},
    {"key": "CONF", "value": "a=1\n", "public": false, "masked": false, "file": true}],
  "steps": [{"name": "script", "script": ["make", "make test"]}, {"name": "after_script", "script": ["echo bye"]}],
  "credentials": [{"type": "registry", "url": "registry.example.com", "username": "gitlab-ci-token", "password": "job-token"}]},
 "running", "log so far\n"])";

} // namespace

int main() {
    glr::check_abi_version();
    CHECK(glr::version() == GLR_VERSION_STRING);
    CHECK(glr::abi_version() == GLR_ABI_VERSION);
    CHECK(glr::to_string(glr::FailureReason::script) == "script_failure");
    CHECK(glr::to_string(glr::FailureReason::runner_interrupted) == "runner_interrupted");
    CHECK(glr::to_string(glr::JobState::canceling) == "canceling");
    CHECK(glr::status_str(GLR_ERR_AUTH) == glr_status_str(GLR_ERR_AUTH));

    // Errors.
    expect_error([] { glr::Runner::loads("not json"); }, GLR_ERR_PARSE, "glr_runner_loads");
    expect_error([] { glr::RegisterOptions().access_level("everything"); }, GLR_ERR_INVALID_ARGUMENT,
                 "glr_register_options_set_access_level");
    glr::Error nul = expect_error([] { glr::Runner::loads(std::string_view("[1,\0]", 5)); },
                                  GLR_ERR_INVALID_ARGUMENT, "glr_runner_loads");
    CHECK(nul.message().find("NUL") != std::string::npos);
    expect_error([] { glr::Runner::load("/nonexistent/runner.json"); }, GLR_ERR_IO, "glr_runner_load");

    // Options build fluently.
    glr::RegisterOptions options;
    options.description("c++").tag("a").tags({"b", "c"}).locked(true).run_untagged(false).maximum_timeout(600);
    CHECK(options);

    // A runner, offline, from the Python package's format.
    glr::Runner runner = glr::Runner::loads(RUNNER_V1);
    CHECK(runner.id() == 42);
    CHECK(runner.api_url() == "http://127.0.0.1:9");
    CHECK(runner.token() == "runner-token");
    CHECK(runner.description() == std::optional<std::string_view>("d"));
    CHECK(runner.name() == std::optional<std::string_view>("wrapped"));
    CHECK(runner.executor() == std::optional<std::string_view>("custom"));
    CHECK(!runner.version());
    CHECK(runner.locked() == std::optional<bool>(true));
    CHECK(runner.run_untagged() == std::optional<bool>(false));
    CHECK(!runner.active());
    CHECK(runner.maximum_timeout() == std::optional<int64_t>(3600));
    CHECK(!runner.system_id().empty());
    std::vector<std::string> tags(runner.tags().begin(), runner.tags().end());
    CHECK((tags == std::vector<std::string>{"alpha", "beta"}));
    CHECK(runner.tags().size() == 2 && runner.tags()[1] == "beta");
    glr::Runner again = glr::Runner::loads(runner.dumps());
    CHECK(again.id() == 42 && again.token() == "runner-token");

    // Moves: the moved-from object holds nothing; its operations throw, its getters default.
    glr::Runner moved = std::move(runner);
    CHECK(moved && !runner);
    CHECK(moved.id() == 42);
    CHECK(runner.id() == 0 && runner.api_url().empty() && !runner.locked() && runner.tags().empty());
    expect_error([&] { runner.dumps(); }, GLR_ERR_NULL_ARGUMENT, "glr_runner_dumps");
    glr_runner *raw = moved.release();
    CHECK(raw != nullptr && !moved);
    glr::Runner adopted(raw);
    CHECK(adopted.id() == 42);

    // A job, offline.
    glr::Job job = glr::Job::loads(JOB_V1);
    CHECK(job.id() == 7);
    CHECK(job.token() == "job-token");
    CHECK(job.name() == std::optional<std::string_view>("build"));
    CHECK(job.stage() == std::optional<std::string_view>("test"));
    CHECK(job.ref() == std::optional<std::string_view>("main"));
    CHECK(job.is_branch() == std::optional<bool>(true));
    CHECK(job.commit_sha() == std::optional<std::string_view>("0123abcd"));
    CHECK(job.project_path() == std::optional<std::string_view>("g/p"));
    CHECK(!job.job_url() && !job.pipeline_url() && !job.username());
    CHECK(job.state() == glr::JobState::running);
    CHECK(job.log() == "log so far\n");

    std::vector<std::string> script;
    for (std::string_view line : job.script())
        script.emplace_back(line);
    CHECK((script == std::vector<std::string>{"make", "make test"}));
    glr::ScriptLines after = job.after_script();
    CHECK(after.size() == 1 && after[0] == "echo bye" && !after.empty());

    glr::Variables variables = job.variables();
    CHECK(variables.size() == 3);
    std::vector<std::string> keys;
    for (const glr::Variable &var : variables)
        keys.emplace_back(var.key);
    CHECK((keys == std::vector<std::string>{"CI_PROJECT_PATH", "SECRET", "CONF"}));
    CHECK(variables[0].is_public() && !variables[0].is_masked());
    CHECK(variables[1].is_masked() && !variables[1].is_public() && variables[1].value == "s3cr3t-value");
    CHECK(variables[2].is_file() && !variables[2].is_raw() && variables[2].value == "a=1\n");
    CHECK(job.variable("SECRET") == std::optional<std::string_view>("s3cr3t-value"));
    CHECK(!job.variable("MISSING"));

    std::optional<glr::RegistryCredential> credential = job.get_registry_credential("registry.example.com/g/img:1");
    CHECK(credential && credential->username == "gitlab-ci-token" && credential->password == "job-token");
    CHECK(!job.get_registry_credential("docker.io/library/alpine"));
    CHECK(job.payload().find("\"job-token\"") != std::string::npos);
    CHECK(job.dependency_count() == 0);

    glr::Job copy = glr::Job::loads(job.dumps());
    CHECK(copy.id() == 7 && copy.log() == "log so far\n");

    // Cancel callbacks live in the job object; assignment frees the old job first.
    int calls = 0;
    copy.set_cancel_callback([&calls](glr::JobState) { ++calls; });
    copy.set_cancel_callback({});
    copy = glr::Job::loads(JOB_V1);
    copy = std::move(job);
    CHECK(copy.id() == 7 && !job);
    CHECK(job.state() == glr::JobState::running); // a moved-from job reports the default
    expect_error([&] { job.append_log("x"); }, GLR_ERR_NULL_ARGUMENT, "glr_job_log_append");

    // Artifacts.
    glr::Artifacts artifacts;
    CHECK(artifacts.size() == 0);
    expect_error([&] { artifacts.add_file("/nonexistent/a.zip", "a.zip"); }, GLR_ERR_IO, "glr_artifacts_add_file");
    expect_error([&] { artifacts.add_file("/etc/hostname", "a.zip", std::nullopt, "tar"); }, GLR_ERR_INVALID_ARGUMENT,
                 "glr_artifacts_add_file");
    expect_error([] { glr::extract_artifacts("/nonexistent.zip", "/tmp"); }, GLR_ERR_IO, "glr_extract_artifacts");
    CHECK(calls == 0);

    std::cout << "wrapper ok (" << checks << " checks)\n";
    return 0;
}
