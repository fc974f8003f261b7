//! The `openplc-runtime` binary: parse the command line, call the library, map
//! the error to an exit code.

use std::process::ExitCode;

use openplc_runtime::cli::{self, Command};
use openplc_runtime::error::{EXIT_CONFIG, Error};
use openplc_runtime::{check, isolation, logging, python, supervisor};

fn main() -> ExitCode {
    match cli::parse(std::env::args_os().skip(1)).and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Config(list)) => {
            for m in &list {
                eprintln!("openplc-runtime: {m}");
            }
            eprintln!(
                "openplc-runtime: {} configuration problem(s); nothing was started",
                list.len()
            );
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("openplc-runtime: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn init_logging(opts: &logging::Options) -> Result<(), Error> {
    let note = logging::init(opts).map_err(|e| Error::Usage(format!("--log-target: {e}")))?;
    log::debug!("{note}");
    Ok(())
}

fn run(cli: cli::Cli) -> Result<(), Error> {
    match cli.command {
        Command::Help => print!("{}", cli::HELP),
        Command::Version => println!("openplc-runtime {}", env!("CARGO_PKG_VERSION")),
        // A worker logs through its supervisor, not to a target of its own.
        Command::Worker(args) => isolation::worker_main(args)?,
        Command::Zygote(args) => isolation::zygote_main(args)?,
        Command::Run(opts) => {
            init_logging(&cli.log)?;
            supervisor::run(&opts)?;
        }
        Command::Check(opts) => {
            init_logging(&cli.log)?;
            check::check(&opts, &mut std::io::stdout())?;
        }
        Command::PythonInfo(opts) => {
            init_logging(&cli.log)?;
            let interp = python::start(opts.python_home.as_deref())?;
            for (k, v) in interp.info()? {
                println!("{k}={v}");
            }
        }
    }
    Ok(())
}
