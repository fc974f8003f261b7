//! `openplc-runtime check`: everything the daemon verifies before it starts a
//! plugin, plus importing each enabled Python plugin and loading each native
//! one (`dlopen` and its symbols), without calling `init`.
//! Used by image builds and by people; prints one line per plugin.

use std::io::Write;

use std::time::Duration;

use std::path::Path;

use crate::config::PluginKind;
use crate::dropins;
use crate::error::Error;
use crate::image::{self, Image};
use crate::native;
use crate::options::Options;
use crate::python;
use crate::resolve;
use crate::resolve::Plugin;
use crate::venv::{self, PyVersion};
use crate::worker::{self, Worker};

/// Runs the checks, printing one line per plugin to `out`. Returns the
/// configuration error with every problem when anything is wrong.
pub fn check(opts: &Options, out: &mut dyn Write) -> Result<(), Error> {
    let conf = dropins::load(&opts.config, opts.root.as_deref())
        .map_err(|errs| Error::Config(errs.iter().map(ToString::to_string).collect()))?;
    let embedded = python::embedded_version();
    // A PLC program's tasks are checked against the period `run` would use.
    crate::program::set_scan_period(opts.scan_period, opts.scan_period_given);
    // Under --root the venvs must match the root's Python; importing needs
    // that Python to be the one embedded here, on this CPU.
    let (version, can_import, python_note) = match &opts.root {
        None => (embedded, true, None),
        Some(root) => root_python_note(root, embedded),
    };
    let (plan, mut errors) =
        resolve::resolve(&conf, version, opts.isolation, crate::sys::effective_uid());
    let process = opts.isolation == resolve::Isolation::Process;
    // Process mode: each plugin is imported by a worker process of its own,
    // exactly as the daemon would run it; the workers map a scratch image.
    let image = if process && can_import && !plan.plugins.is_empty() {
        Some(image::install(opts.buffer_size).map_err(Error::Os)?)
    } else {
        None
    };
    let interp = if plan.plugins.is_empty() || process || !can_import {
        None
    } else {
        let i = python::start(opts.python_home.as_deref())?;
        i.set_paths(&plan.plugin_dirs(), &plan.site_dirs(), plan.system_site())
            .map_err(Error::Python)?;
        Some(i)
    };
    let _ = writeln!(
        out,
        "{}: {} plugin line(s), Python {version}, isolation {}",
        conf.file.display(),
        conf.plugins.len(),
        opts.isolation
    );
    if let Some(note) = &python_note {
        let _ = writeln!(out, "python: {note}");
    }
    // The drop-ins considered and what became of each, when there are any
    // (a lone plugins.conf is named on the first line already).
    if conf.has_dropins() {
        for s in &conf.sources {
            let _ = writeln!(out, "source: {s}");
        }
    }
    for entry in &conf.plugins {
        let name = entry.name.as_str();
        let at = entry.origin();
        if !entry.enabled {
            let _ = writeln!(out, "{name}: disabled (not checked), {at}");
            continue;
        }
        let Some(p) = plan.plugins.iter().find(|p| p.name() == name) else {
            let _ = writeln!(out, "{name}: error (see below), {at}");
            continue;
        };
        if p.entry.kind == PluginKind::Native {
            if !can_import {
                let _ = writeln!(out, "{name}: ok (native, not loaded: another CPU), {at}");
                continue;
            }
            // dlopen(RTLD_NOW) resolves every symbol, so a library missing on
            // the board is found here; no plugin function is called (a PLC
            // program's extension only reports its tables).
            match native::check(&p.entry.path, opts.buffer_size) {
                Ok(symbols) => {
                    let _ = writeln!(out, "{name}: ok (native, {symbols}), {at}");
                }
                Err(e) => {
                    let _ = writeln!(out, "{name}: error (see below), {at}");
                    errors.push(format!("{at}: plugin `{name}`: {e}"));
                }
            }
            continue;
        }
        let venv = p
            .venv
            .as_ref()
            .map(|v| {
                format!(
                    "venv {} ({} distributions)",
                    v.root.display(),
                    v.distributions.len()
                )
            })
            .unwrap_or_else(|| "no venv".into());
        let imported = match (&interp, image) {
            (Some(interp), _) => interp
                .load_plugin(&python::module_name(name), &p.entry.path)
                .map(|m| interp.has_function(&m, "init")),
            (None, Some(image)) => import_in_worker(p, image, opts),
            (None, None) => {
                let _ = writeln!(out, "{name}: ok (python, {venv}, not imported), {at}");
                continue;
            }
        };
        match imported {
            Ok(true) => {
                let how = if process {
                    "imports in its own process"
                } else {
                    "imports"
                };
                let _ = writeln!(out, "{name}: ok (python, {venv}, {how}, has init), {at}");
            }
            Ok(false) => {
                let _ = writeln!(out, "{name}: error (see below), {at}");
                errors.push(format!(
                    "{at}: plugin `{name}`: {} has no init() function (init(args) is required)",
                    p.entry.path.display()
                ));
            }
            Err(tb) => {
                let _ = writeln!(out, "{name}: error (see below), {at}");
                errors.push(format!(
                    "{at}: plugin `{name}`: importing {} failed:\n{tb}",
                    p.entry.path.display()
                ));
            }
        }
    }
    if let Some(i) = &interp {
        i.flush_stdio();
    }
    let _ = out.flush();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Config(errors))
    }
}

/// `check --root`: the Python the venvs must match, whether plugins can be
/// imported here, and what to tell the user about it.
fn root_python_note(root: &Path, embedded: PyVersion) -> (PyVersion, bool, Option<String>) {
    match venv::root_python(root) {
        Some(rp) => {
            let same = rp.arch.as_deref() == Some(std::env::consts::ARCH)
                && rp.version.abi_matches(&embedded);
            let note = if same {
                format!("{rp}: the runtime's own, so plugins are imported")
            } else {
                format!(
                    "{rp}, this runtime embeds Python {embedded} on {}: nothing is imported (files, venv layout and versions are checked)",
                    std::env::consts::ARCH
                )
            };
            (rp.version, same, Some(note))
        }
        None => (
            embedded,
            true,
            Some(format!(
                "no Python under {} (no usr/lib/python3.*/os.py): venvs are checked against the embedded Python {embedded}",
                root.display()
            )),
        ),
    }
}

/// Imports `p` in a worker process (process isolation), as the daemon would:
/// `Ok(has_init)` or the traceback.
fn import_in_worker(p: &Plugin, image: &'static Image, opts: &Options) -> Result<bool, String> {
    let spec = worker::Spec::for_plugin(
        p,
        0,
        image.buffer_size(),
        u64::try_from(opts.scan_period.as_nanos()).unwrap_or(u64::MAX),
        opts.python_home.clone(),
    );
    let (exits, _) = std::sync::mpsc::channel();
    let w = std::sync::Arc::new(
        Worker::spawn(&spec, image, exits)
            .map_err(|e| format!("cannot start a worker process: {e}"))?,
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::sync::Arc::clone(&w);
    std::thread::spawn(move || {
        let _ = tx.send(waiter.import_result());
    });
    let budget: Duration = crate::lifecycle::INIT_BUDGET;
    let outcome = rx.recv_timeout(budget);
    w.kill();
    w.reap(worker::EXIT_BUDGET);
    match outcome {
        Ok(python::CallOutcome::Ok) => Ok(true),
        Ok(python::CallOutcome::Missing) => Ok(false),
        Ok(python::CallOutcome::Raised(tb)) => Err(tb),
        Err(_) => Err(format!(
            "the import did not finish within {} s",
            budget.as_secs()
        )),
    }
}
