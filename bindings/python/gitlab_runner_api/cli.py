"""register-runner, as in the Python package: ``python3 -m gitlab_runner_api.cli API_URL TOKEN
OUTPUT.json [--locked] [--maximum-timeout SECONDS]`` registers a runner and saves it. (The
library also ships a native `register-runner` program with more options.)"""

import argparse


def register_runner(argv=None):
    """The console script: parses `argv` (default sys.argv[1:]), registers, dumps."""
    from .runner import Runner

    parser = argparse.ArgumentParser(prog="register-runner")
    parser.add_argument("api_url")
    parser.add_argument("token")
    parser.add_argument("output_fn")
    parser.add_argument("--locked", action="store_true", default=None, help="Lock the runner to the current project")
    parser.add_argument(
        "--maximum-timeout", type=int, help="Maximum timeout set when this Runner will handle the job (in seconds)"
    )
    args = parser.parse_args(argv)
    if not args.output_fn.endswith(".json"):
        parser.error("Requested output filename must end in .json")
    runner = Runner.register(args.api_url, args.token, locked=args.locked, maximum_timeout=args.maximum_timeout)
    runner.dump(args.output_fn)
    print("Registered runner %d, saved to %s" % (runner.id, args.output_fn))


if __name__ == "__main__":
    register_runner()
