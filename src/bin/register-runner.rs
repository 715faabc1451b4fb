//! `register-runner`: the Python package's CLI, same arguments (`api_url token output_fn
//! [--locked] [--maximum-timeout N]`) plus the other registration options. A `glrt-` token
//! (a runner created in GitLab) uses the verify flow instead of registering. The output file is
//! written atomically with mode 0600. Errors are one line on stderr and a non-zero exit.

use gitlab_runner_api::internal::{runner_to_string, write_file_atomic, RegisterOptions, Runner};
use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: register-runner [-h] [--locked] [--maximum-timeout MAXIMUM_TIMEOUT]
                       [--description TEXT] [--tag TAG]... [--run-untagged]
                       [--paused] [--access-level not_protected|ref_protected]
                       [--maintenance-note TEXT] [--name NAME] [--executor NAME]
                       api_url token output_fn";

const HELP: &str = "
Registers a GitLab runner and writes it to output_fn (JSON, mode 0600: it holds the token).
A registration token registers a new runner (POST /api/v4/runners); an authentication token
starting with glrt- (a runner created in GitLab) is verified instead, and then the
server-side options (--locked, --tag, ...) must not be given: they are set in GitLab.

positional arguments:
  api_url               GitLab's URL, e.g. https://gitlab.example.com
  token                 registration token, or glrt- authentication token
  output_fn             where to write the runner (must end in .json)

options:
  -h, --help            show this help message and exit
  --locked              lock the runner to the current project
  --maximum-timeout MAXIMUM_TIMEOUT
                        maximum timeout set when this runner will handle the job (in seconds)
  --description TEXT    the runner's description
  --tag TAG             a tag (repeatable; also --tag-list a,b)
  --run-untagged        take jobs without tags
  --paused              register paused (takes no jobs until resumed)
  --access-level LEVEL  not_protected or ref_protected
  --maintenance-note TEXT
  --name NAME, --executor NAME
                        what the runner reports about itself in info";

enum Parsed {
    Help,
    Run { api_url: String, token: String, output: String, options: Box<RegisterOptions>, server_side: bool },
}

fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut positional = Vec::new();
    let mut o = RegisterOptions::default();
    let mut server_side = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("argument {name}: expected one argument"))
        };
        match flag {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--locked" => {
                o.registration.locked = Some(true);
                server_side = true;
            }
            "--run-untagged" => {
                o.registration.run_untagged = Some(true);
                server_side = true;
            }
            "--paused" => {
                o.registration.paused = Some(true);
                server_side = true;
            }
            "--maximum-timeout" => {
                let v = value("--maximum-timeout")?;
                let n = v.parse().map_err(|_| format!("argument --maximum-timeout: invalid int value: '{v}'"))?;
                o.registration.maximum_timeout = Some(n);
                server_side = true;
            }
            "--description" => o.registration.description = Some(value("--description")?),
            "--tag" => {
                o.registration.tags.push(value("--tag")?);
                server_side = true;
            }
            "--tag-list" => {
                let v = value("--tag-list")?;
                o.registration.tags.extend(v.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from));
                server_side = true;
            }
            "--access-level" => {
                o.registration.access_level = Some(value("--access-level")?);
                server_side = true;
            }
            "--maintenance-note" => {
                o.registration.maintenance_note = Some(value("--maintenance-note")?);
                server_side = true;
            }
            "--name" => o.identity.name = Some(value("--name")?),
            "--executor" => o.identity.executor = Some(value("--executor")?),
            f if f.starts_with('-') && f.len() > 1 => return Err(format!("unrecognized arguments: {arg}")),
            _ => positional.push(arg.clone()),
        }
    }
    let [api_url, token, output] = <[String; 3]>::try_from(positional).map_err(|p| match p.len() {
        n if n < 3 => {
            let missing = ["api_url", "token", "output_fn"][n..].join(", ");
            format!("the following arguments are required: {missing}")
        }
        _ => format!("unrecognized arguments: {}", p[3..].join(" ")),
    })?;
    if !output.ends_with(".json") {
        return Err("Requested output filename must end in .json".into());
    }
    Ok(Parsed::Run { api_url, token, output, options: Box::new(o), server_side })
}

fn run(
    api_url: &str,
    token: &str,
    output: &str,
    options: &RegisterOptions,
    server_side: bool,
) -> Result<String, String> {
    let runner = if token.starts_with("glrt-") {
        if server_side {
            return Err("a glrt- token belongs to a runner created in GitLab: set --locked, --tag, --run-untagged, \
                        --paused, --access-level, --maximum-timeout and --maintenance-note there, not here"
                .into());
        }
        Runner::from_token(api_url, token).map_err(|e| e.message)?
    } else {
        Runner::register(api_url, token, options).map_err(|e| e.message)?
    };
    let data = runner.data();
    write_file_atomic(Path::new(output), &runner_to_string(&data)).map_err(|e| e.message)?;
    Ok(format!("runner {} written to {output}", data.id))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Ok(Parsed::Help) => {
            println!("{USAGE}\n{HELP}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{USAGE}\nregister-runner: error: {e}");
            ExitCode::from(2)
        }
        Ok(Parsed::Run { api_url, token, output, options, server_side }) => {
            match run(&api_url, &token, &output, &options, server_side) {
                Ok(done) => {
                    println!("{done}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("register-runner: error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
