//! `openplc-runtime check`: everything the daemon verifies before it starts a
//! plugin, plus importing each enabled Python plugin and loading each native
//! one (`dlopen` and its symbols), without calling `init`.
//! Used by image builds and by people; prints one line per plugin.

use std::io::Write;

use crate::config::{self, PluginKind};
use crate::error::Error;
use crate::native;
use crate::python;
use crate::resolve;
use crate::supervisor::Options;

/// Runs the checks, printing one line per plugin to `out`. Returns the
/// configuration error with every problem when anything is wrong.
pub fn check(opts: &Options, out: &mut dyn Write) -> Result<(), Error> {
    let conf = config::load(&opts.config)
        .map_err(|errs| Error::Config(errs.iter().map(ToString::to_string).collect()))?;
    let embedded = python::embedded_version();
    let (plan, mut errors) =
        resolve::resolve(&conf, embedded, opts.isolation, crate::sys::effective_uid());
    if opts.isolation == resolve::Isolation::Process {
        errors.push("--isolation process is not available in this build yet".into());
    }

    let interp = if plan.plugins.is_empty() {
        None
    } else {
        let i = python::start(opts.python_home.as_deref())?;
        i.set_paths(&plan.plugin_dirs(), &plan.site_dirs(), plan.system_site())
            .map_err(Error::Python)?;
        Some(i)
    };
    let _ = writeln!(
        out,
        "{}: {} plugin line(s), Python {embedded}, isolation {}",
        conf.file.display(),
        conf.plugins.len(),
        opts.isolation
    );
    for entry in &conf.plugins {
        let name = entry.name.as_str();
        if !entry.enabled {
            let _ = writeln!(out, "{name}: disabled (not checked)");
            continue;
        }
        let Some(p) = plan.plugins.iter().find(|p| p.name() == name) else {
            let _ = writeln!(out, "{name}: error (see below)");
            continue;
        };
        if p.entry.kind == PluginKind::Native {
            // dlopen(RTLD_NOW) resolves every symbol, so a library missing on
            // the board is found here; no plugin function is called.
            match native::check(&p.entry.path) {
                Ok(symbols) => {
                    let _ = writeln!(out, "{name}: ok (native, {symbols})");
                }
                Err(e) => {
                    let _ = writeln!(out, "{name}: error (see below)");
                    errors.push(format!(
                        "{}:{}: plugin `{name}`: {e}",
                        conf.file.display(),
                        entry.line
                    ));
                }
            }
            continue;
        }
        let Some(interp) = &interp else { continue };
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
        match interp.load_plugin(&python::module_name(name), &p.entry.path) {
            Ok(m) if interp.has_function(&m, "init") => {
                let _ = writeln!(out, "{name}: ok (python, {venv}, imports, has init)");
            }
            Ok(_) => {
                let _ = writeln!(out, "{name}: error (see below)");
                errors.push(format!(
                    "{}:{}: plugin `{name}`: {} has no init() function (init(args) is required)",
                    conf.file.display(),
                    entry.line,
                    p.entry.path.display()
                ));
            }
            Err(tb) => {
                let _ = writeln!(out, "{name}: error (see below)");
                errors.push(format!(
                    "{}:{}: plugin `{name}`: importing {} failed:\n{tb}",
                    conf.file.display(),
                    entry.line,
                    p.entry.path.display()
                ));
            }
        }
    }
    if let Some(i) = &interp {
        i.flush_stdio();
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Config(errors))
    }
}
