// quickstart.cpp - quickstart.c with the C++17 wrapper gitlab_runner_api.hpp: registers a
// runner, takes one job, logs its script lines, and reports it successful.
//
//   quickstart_cpp API_URL REGISTRATION_TOKEN [DESCRIPTION]
//
// Exit status: 0 a job was taken and reported; 1 error; 2 no job arrived.
#include <gitlab_runner_api.hpp>

#include <iostream>
#include <optional>
#include <string>

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        std::cerr << "usage: quickstart_cpp API_URL REGISTRATION_TOKEN [DESCRIPTION]\n";
        return 1;
    }
    try {
        glr::check_abi_version();

        // 1. Register a runner.
        glr::Runner runner = glr::Runner::register_runner(
            argv[1], argv[2], glr::RegisterOptions().description(argc > 3 ? argv[3] : "quickstart (C++)"));
        std::cout << "Registered runner " << runner.id() << "\n";

        // 2. Get a job (each request may long-poll; std::nullopt means no job now).
        std::optional<glr::Job> job;
        for (int tries = 0; tries < 10 && !job; tries++)
            job = runner.request_job();
        if (!job) {
            std::cout << "No job available\n";
            return 2;
        }

        // 3. Log and report (a real executor runs the script lines here).
        job->append_log("Running with gitlab_runner_api " + std::string(glr::version()) + " (quickstart.cpp)\n");
        for (std::string_view line : job->script())
            job->append_log("$ " + std::string(line) + "\n");
        for (const glr::Variable &var : job->variables())
            if (var.key == "CI_JOB_STAGE")
                job->append_log("Stage: " + std::string(var.value) + "\n");
        job->append_log("Job succeeded\n");
        job->set_success(); // uploads the log, then reports
        std::cout << "Job " << job->id() << ": " << glr::to_string(job->state()) << "\n";
        return 0;
    } catch (const glr::Error &e) {
        std::cerr << "quickstart_cpp: " << e.what() << "\n";
        return 1;
    }
}
