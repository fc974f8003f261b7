//! The worker process: `openplc-runtime worker ...` (re-executed) or a fork
//! of the zygote; either way it runs [`serve`]: one plugin, its lifecycle
//! calls answered over the control socket.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use super::frames::{IMPORT, OUT, Sink, encode_result, forward_logs, read_frame, send};
use super::spec::{Spec, parse_args};
use crate::error::Error;
use crate::image;
use crate::lifecycle::Call;
use crate::python::{self, CallOutcome, Capsule};

/// How long a worker waits, after its first `start_loop`, for the supervisor
/// to be quiet before it reports its stdlib imports (off the start-up path).
const LEARN_DELAY: Duration = Duration::from_millis(300);

/// `openplc-runtime worker ...`: runs one plugin for the supervisor, in a
/// fresh interpreter.
pub fn worker_main(args: Vec<OsString>) -> Result<(), Error> {
    let (spec, image_fd, control_fd) = parse_args(args)?;
    let (Some(image_fd), Some(control_fd)) = (image_fd, control_fd) else {
        return Err(Error::Usage(
            "worker: missing --image-fd or --control-fd (this command is started by the runtime itself)"
                .into(),
        ));
    };
    if image_fd < 3 || control_fd < 3 {
        return Err(Error::Usage(
            "worker: --image-fd and --control-fd must be inherited descriptors (3 or more)".into(),
        ));
    }
    // SAFETY: the supervisor passed this descriptor, open and owned by nobody
    // else in this process, and named it on our command line.
    let ctl = unsafe { UnixStream::from_raw_fd(control_fd) };
    // SAFETY: as above, for the image's memfd.
    let image_fd = unsafe { OwnedFd::from_raw_fd(image_fd) };
    serve(&spec, image_fd, ctl, None)
}

/// A worker's life once it has its control socket `ctl` and the image's
/// memfd: attach the image, start the interpreter (or take the zygote's,
/// `forked`), set `sys.path`, import the plugin, then answer lifecycle calls
/// until `cleanup` or until the socket closes. Exits the process.
pub(crate) fn serve(
    spec: &Spec,
    image_fd: OwnedFd,
    ctl: UnixStream,
    forked: Option<python::Interpreter>,
) -> Result<(), Error> {
    // What this process holds of the runtime (the control socket, the
    // image's memfd, whatever the zygote had) is not passed on to programs
    // the plugin starts: a `sleep 15 &` must not hold the control socket.
    crate::sys::all_cloexec_from(3, crate::sys::open_max());
    let writer = ctl.try_clone().map_err(|e| Error::Os(e.to_string()))?;
    *OUT.lock().unwrap_or_else(|e| e.into_inner()) = Sink::Stream(writer);
    forward_logs();
    image::on_stop_request(Box::new(|| send(b'S', b"")));

    let img = image::attach(image_fd, spec.buffer_size, image::worker_ring(spec.slot))
        .map_err(Error::Os)?;
    image::set_slot_name(spec.slot, &spec.plugin);
    let from_zygote = forked.is_some();
    let interp = match forked {
        Some(i) => i,
        None => python::start(spec.python_home.as_deref())?,
    };
    let plugin_dir = spec.path.parent().map(PathBuf::from).unwrap_or_default();
    interp
        .set_paths(&[plugin_dir], &spec.site_dirs, spec.system_site)
        .map_err(Error::Python)?;
    if from_zygote {
        // Preloading must not change which module the plugin gets: when its
        // sys.path would import a preloaded name from elsewhere, it starts
        // without the preload, as a re-executed worker would.
        match interp.preload_shadowed() {
            Ok(names) if names.is_empty() => {}
            Ok(names) => {
                log::info!(
                    "[{}] its sys.path provides its own {}: this worker forgets the zygote's preloaded modules",
                    spec.plugin,
                    names.join(", ")
                );
                interp.drop_preload().map_err(Error::Python)?;
            }
            Err(e) => {
                log::warn!(
                    "[{}] cannot compare its sys.path with the preload ({e}); this worker forgets the preloaded modules",
                    spec.plugin
                );
                interp.drop_preload().map_err(Error::Python)?;
            }
        }
    }
    let result = |func: &str, o: &CallOutcome| send(b'R', &encode_result(func, o));
    let module = match interp.load_plugin(&python::module_name(&spec.plugin), &spec.path) {
        Ok(m) => {
            let has_init = interp.has_function(&m, "init");
            // The import result says whether `init` exists (`missing` if not).
            let o = if has_init {
                CallOutcome::Ok
            } else {
                CallOutcome::Missing
            };
            result(IMPORT, &o);
            m
        }
        Err(tb) => {
            result(IMPORT, &CallOutcome::Raised(tb));
            interp.flush_stdio();
            std::process::exit(0);
        }
    };
    let args = img.runtime_args_for(
        spec.slot,
        spec.config_path.as_deref(),
        spec.state_dir.as_deref(),
        spec.period_ns,
    );
    let capsule = Capsule::new(args).map_err(Error::Python)?;
    let mut reader = ctl;
    // Set after the first start_loop: once the supervisor has been quiet for
    // LEARN_DELAY (the others are starting meanwhile), this worker reports
    // the stdlib modules it imported, for the next zygote.
    let mut learn_pending = false;
    let mut learned = false;
    loop {
        if learn_pending && !crate::sys::wait_readable(reader.as_raw_fd(), LEARN_DELAY) {
            learn_pending = false;
            send(b'M', interp.stdlib_loaded().join("\n").as_bytes());
        }
        let Ok(Some((kind, payload))) = read_frame(&mut reader) else {
            break;
        };
        if kind != b'C' {
            continue;
        }
        let name = String::from_utf8_lossy(&payload);
        let Some(func) = Call::from_name(&name) else {
            // Not a lifecycle function: nothing of the plugin is called.
            result(&name, &CallOutcome::Missing);
            continue;
        };
        if learn_pending && matches!(func, Call::StopLoop | Call::Cleanup) {
            // Stopped before the supervisor was ever quiet: report now.
            learn_pending = false;
            send(b'M', interp.stdlib_loaded().join("\n").as_bytes());
        }
        let outcome = interp.call(&module, func, (func == Call::Init).then_some(&capsule));
        result(func.name(), &outcome);
        if func == Call::StartLoop && !learned {
            learned = true;
            learn_pending = true;
        }
        if func == Call::Cleanup {
            break;
        }
    }
    interp.flush_stdio();
    // Plugin threads that were not joined must not keep the worker alive.
    let _ = std::io::stdout().flush();
    std::process::exit(0);
}
