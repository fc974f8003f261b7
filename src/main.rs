//! The `openplc-runtime` binary: parse the command line, call the library, map
//! the error to an exit code.

use std::process::ExitCode;

use openplc_runtime::cli::{self, Command};

fn main() -> ExitCode {
    match cli::parse(std::env::args_os().skip(1)).and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(openplc_runtime::error::Error::Config(list)) => {
            for m in &list {
                eprintln!("openplc-runtime: {m}");
            }
            eprintln!(
                "openplc-runtime: {} configuration problem(s); nothing was started",
                list.len()
            );
            ExitCode::from(openplc_runtime::error::EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("openplc-runtime: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: cli::Cli) -> Result<(), openplc_runtime::error::Error> {
    match openplc_runtime::logging::init(&cli.log) {
        Ok(note) => log::debug!("{note}"),
        Err(e) => {
            return Err(openplc_runtime::error::Error::Usage(format!(
                "--log-target: {e}"
            )));
        }
    }
    match cli.command {
        Command::Help => print!("{}", cli::HELP),
        Command::Version => println!("openplc-runtime {}", env!("CARGO_PKG_VERSION")),
        Command::Run(opts) => {
            openplc_runtime::supervisor::run(&opts)?;
        }
        Command::Check(opts) => openplc_runtime::check::check(&opts, &mut std::io::stdout())?,
        Command::PythonInfo(opts) => {
            let interp = openplc_runtime::python::start(opts.python_home.as_deref())?;
            for (k, v) in interp.info()? {
                println!("{k}={v}");
            }
        }
    }
    Ok(())
}
