//! The embedded CPython interpreter: the one owner of it, and all pyo3 code.
//!
//! Start-up (`start`) uses an isolated `PyConfig`:
//! - isolated: PYTHONPATH, PYTHONHOME and the other PYTHON* variables of the
//!   environment change nothing (a unit file or a shell profile must not be able
//!   to change what a plugin imports);
//! - `write_bytecode = 0`: the root filesystem is read-only; venvs built for the
//!   image carry their `.pyc` already;
//! - `install_signal_handlers = 0`: the runtime owns SIGTERM/SIGINT/SIGHUP;
//! - `site_import = 0`: `site` must not add the system site-packages behind our
//!   back. Site directories are added explicitly, per plugin, with
//!   `site.addsitedir` (so `.pth` files work), from `set_paths`.
//!
//! Paths and names reach Python only as call arguments, never pasted into
//! source text. The helper code below is a constant.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict, PyList};

use crate::error::Error;
use crate::image::{CAPSULE_NAME, RuntimeArgs};
use crate::lifecycle::Call;
use crate::venv::PyVersion;

/// Python helpers the runtime calls. Plain functions over their arguments.
const HELPER_SRC: &CStr = cr#"
import gc
import importlib
import importlib.util
import os
import site
import sys
import sysconfig

# sys.path as the interpreter computed it (the stdlib only, since the config is
# isolated and `site` was not imported). Every activation starts from it again,
# so sys.path never grows across reloads.
_BASE_PATH = list(sys.path)


def set_paths(plugin_dirs, site_dirs, system_site):
    plugin_dirs = [os.fspath(d) for d in plugin_dirs]
    site_dirs = [os.fspath(d) for d in site_dirs]
    sys.path[:] = plugin_dirs + [p for p in _BASE_PATH if p not in plugin_dirs]
    known = set(sys.path)
    for d in site_dirs:
        # addsitedir appends the directory and processes its .pth files, as the
        # `site` module does for a normal interpreter.
        site.addsitedir(d, known)
    if system_site:
        for d in site.getsitepackages([sys.base_prefix]):
            if os.path.isdir(d):
                site.addsitedir(d, known)
    importlib.invalidate_caches()
    return list(sys.path)


def load_plugin(module_name, path):
    # Each plugin gets its own module object even when several plugin files share
    # a basename (plugin.py): the module is created from the file's location
    # under a per-plugin name instead of `import <basename>`.
    sys.modules.pop(module_name, None)
    path = os.fspath(path)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError("cannot make an import spec for " + repr(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def unload_plugin(module_name):
    sys.modules.pop(module_name, None)


def flush_stdio():
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass


# The zygote (process isolation): stdlib modules imported once before the
# forks. Modules with import-time side effects are never preloaded.
_NO_PRELOAD = {"__main__", "__hello__", "__phello__", "antigravity", "idlelib", "this",
               "tkinter", "turtle",
               "turtledemo", "test", "pydoc_data", "ensurepip", "venv", "distutils",
               "lib2to3", "readline", "curses"}
# What sys.modules held before the preload (the interpreter's own start-up and
# this helper's imports: a re-executed worker has them too).
_BEFORE_PRELOAD = None
# Top-level name -> origin of every module the preload added.
_PRELOADED = {}
# In a forked worker: what sys.modules held when it was forked.
_AT_FORK = None


def _origin(module):
    spec = getattr(module, "__spec__", None)
    if spec is not None:
        return spec.origin
    return getattr(module, "__file__", None)


def _preloadable(name):
    # A stdlib module of identifiers, none of them `__main__` (importing
    # `unittest.__main__` runs test discovery in the working directory).
    parts = name.split(".")
    if not all(p.isidentifier() and p != "__main__" for p in parts):
        return False
    stdlib = getattr(sys, "stdlib_module_names", None)
    return parts[0] not in _NO_PRELOAD and stdlib is not None and parts[0] in stdlib


def stdlib_names():
    return sorted(getattr(sys, "stdlib_module_names", ()))


def preload(names):
    # Called again when workers report more (the zygote then has them for
    # the next fork): what counts as preloaded is everything since the first.
    global _BEFORE_PRELOAD
    if _BEFORE_PRELOAD is None:
        _BEFORE_PRELOAD = set(sys.modules)
    before = len(sys.modules)
    failed = []
    for name in names:
        if not _preloadable(name):
            failed.append("%s (not a stdlib module the zygote imports)" % name)
            continue
        try:
            importlib.import_module(name)
        except BaseException as e:
            # SystemExit and KeyboardInterrupt too: a module that ends the
            # process at import must not end the zygote.
            failed.append("%s (%s: %s)" % (name, type(e).__name__, e))
    # Warm what every worker runs next (the compiler, for its plugin file),
    # so that its lazily made state is made once, here.
    exec(compile("def init(args):\n    pass\n\nclass C:\n    x = [i for i in range(3)]\n",
                 "<openplc-runtime warm-up>", "exec"), {})
    for name, module in list(sys.modules.items()):
        if name not in _BEFORE_PRELOAD and "." not in name:
            _PRELOADED[name] = _origin(module)
    # What is loaded now stays: keep the collector off those pages, so that
    # they stay shared with the forked workers (copy-on-write).
    gc.collect()
    gc.freeze()
    return len(sys.modules) - before, failed


def fork(state_var, state_dir):
    global _AT_FORK
    pid = os.fork()
    if pid == 0:
        _AT_FORK = set(sys.modules)
        if state_dir is None:
            os.environ.pop(state_var, None)
        else:
            os.environ[state_var] = os.fspath(state_dir)
    return pid


def preload_shadowed():
    # Which preloaded top-level modules this sys.path (set by set_paths, with
    # the finders its .pth files installed) would import from elsewhere.
    out = []
    for name, origin in _PRELOADED.items():
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            try:
                spec = find(name, None)
            except Exception:
                spec = None
                origin = object()
            if spec is not None:
                break
        if spec is None or spec.origin != origin:
            out.append(name)
    return sorted(out)


def drop_preload():
    # Back to what a re-executed worker has: every module the preload added is
    # forgotten and imported afresh, from this sys.path, when asked for.
    for name in list(sys.modules):
        if name not in _BEFORE_PRELOAD:
            del sys.modules[name]
    _PRELOADED.clear()
    gc.unfreeze()
    importlib.invalidate_caches()


def stdlib_loaded():
    # The stdlib modules this process imported (for the next zygote's
    # preload); in a forked worker, those it imported itself.
    roots = tuple(os.path.join(p, "") for p in _BASE_PATH if p)
    out = []
    for name, module in list(sys.modules.items()):
        if not _preloadable(name) or (_AT_FORK is not None and name in _AT_FORK):
            continue
        origin = _origin(module)
        if origin in ("built-in", "frozen") or (
                isinstance(origin, str) and origin.startswith(roots)):
            out.append(name)
    return sorted(out)


def info():
    cache_tag = sys.implementation.cache_tag or ""
    return {
        "version": "%d.%d.%d" % sys.version_info[:3],
        "major_minor": "%d.%d" % sys.version_info[:2],
        "abi": "cp" + cache_tag.split("-")[-1] if cache_tag.startswith("cpython-") else cache_tag,
        "soabi": sysconfig.get_config_var("SOABI") or "",
        "machine": os.uname().machine,
        "prefix": sys.prefix,
        "stdlib": sysconfig.get_path("stdlib"),
    }
"#;

/// The version of the linked libpython, readable before the interpreter starts.
pub fn embedded_version() -> PyVersion {
    // SAFETY: Py_GetVersion returns a static NUL-terminated string and may be
    // called before initialisation.
    let text = unsafe { CStr::from_ptr(ffi::Py_GetVersion()) }.to_string_lossy();
    let first = text.split_whitespace().next().unwrap_or_default();
    PyVersion::parse(first).unwrap_or(PyVersion {
        major: 0,
        minor: 0,
        micro: 0,
    })
}

/// How a lifecycle call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// Returned normally.
    Ok,
    /// The module has no such function (fine for the optional ones).
    Missing,
    /// Raised; the formatted traceback.
    Raised(String),
}

/// A loaded plugin module.
pub struct Module {
    pub name: String,
    module: Py<PyAny>,
}

/// The running interpreter. One per process; `start` refuses a second.
pub struct Interpreter {
    helper: Py<PyModule>,
}

/// Starts the embedded interpreter (see the module docs for the configuration).
/// `home` overrides the interpreter's prefix (the directory holding
/// `lib/pythonX.Y`), for a sysroot under qemu-user or a relocated image.
pub fn start(home: Option<&Path>) -> Result<Interpreter, Error> {
    // SAFETY: checking the global interpreter state; no GIL needed.
    if unsafe { ffi::Py_IsInitialized() } != 0 {
        return Err(Error::Python(
            "the embedded interpreter is already running in this process".into(),
        ));
    }
    let home_c = home
        .map(|h| {
            use std::os::unix::ffi::OsStrExt;
            CString::new(h.as_os_str().as_bytes()).map_err(|_| {
                Error::Usage(format!(
                    "--python-home {}: contains a NUL byte",
                    h.display()
                ))
            })
        })
        .transpose()?;
    let program = std::env::current_exe()
        .ok()
        .and_then(|p| {
            use std::os::unix::ffi::OsStrExt;
            CString::new(p.as_os_str().as_bytes()).ok()
        })
        .unwrap_or_else(|| c"openplc-runtime".to_owned());

    // SAFETY: the PyConfig is initialised by PyConfig_InitIsolatedConfig before
    // any field is touched, its strings are set only through PyConfig_Set*, and it
    // is cleared after use. Py_InitializeFromConfig runs once (checked above) on
    // this thread, which then holds the GIL and releases it with
    // PyEval_SaveThread so that any thread can attach later.
    unsafe {
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::zeroed();
        ffi::PyConfig_InitIsolatedConfig(config.as_mut_ptr());
        let mut config = config.assume_init();
        config.install_signal_handlers = 0;
        config.write_bytecode = 0;
        config.site_import = 0;
        config.user_site_directory = 0;
        config.parse_argv = 0;
        config.buffered_stdio = 0;
        let mut status =
            ffi::PyConfig_SetBytesString(&mut config, &mut config.program_name, program.as_ptr());
        if ffi::PyStatus_Exception(status) == 0
            && let Some(h) = &home_c
        {
            status = ffi::PyConfig_SetBytesString(&mut config, &mut config.home, h.as_ptr());
        }
        if ffi::PyStatus_Exception(status) == 0 {
            status = ffi::Py_InitializeFromConfig(&config);
        }
        ffi::PyConfig_Clear(&mut config);
        if ffi::PyStatus_Exception(status) != 0 {
            let msg = if status.err_msg.is_null() {
                "unknown error".to_string()
            } else {
                CStr::from_ptr(status.err_msg)
                    .to_string_lossy()
                    .into_owned()
            };
            let hint = match home {
                Some(h) => format!("--python-home {} is used", h.display()),
                None => "pass --python-home with the prefix that holds lib/pythonX.Y".to_string(),
            };
            return Err(Error::Python(format!(
                "the embedded Python {} did not start: {msg}; {hint}",
                embedded_version()
            )));
        }
        ffi::PyEval_SaveThread();
    }
    Python::attach(|py| {
        let helper = PyModule::from_code(py, HELPER_SRC, c"<openplc-runtime>", c"_openplc_runtime")
            .map_err(|e| {
                Error::Python(format!(
                    "during runtime helper set-up: {}",
                    describe(py, &e)
                ))
            })?;
        Ok(Interpreter {
            helper: helper.unbind(),
        })
    })
}

/// Paths as Python `str` (file-system encoding), not `pathlib.Path`: pyo3
/// converts a `PathBuf` to the latter, and importing `pathlib` costs a fresh
/// worker about 10 ms that the plugin may never need.
fn os_strings(paths: &[PathBuf]) -> Vec<std::ffi::OsString> {
    paths.iter().map(|p| p.as_os_str().to_owned()).collect()
}

/// "Type: message" plus the traceback, for a Python exception.
fn describe(py: Python<'_>, err: &PyErr) -> String {
    let value = err.value(py);
    // Formatting can fail only if the traceback module is broken; fall back to
    // the exception's str().
    py.import("traceback")
        .and_then(|tb| {
            tb.call_method1(
                "format_exception",
                (value.get_type(), value, err.traceback(py)),
            )
        })
        .and_then(|lines| {
            let s: Vec<String> = lines.extract()?;
            Ok(s.concat().trim_end().to_string())
        })
        .unwrap_or_else(|_| err.to_string())
}

impl Interpreter {
    fn helper_call<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        args: impl pyo3::call::PyCallArgs<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.helper.bind(py).getattr(name)?.call1(args)
    }

    /// The embedded interpreter's facts for `python-info`, in print order.
    pub fn info(&self) -> Result<Vec<(String, String)>, Error> {
        Python::attach(|py| {
            let d = self
                .helper_call(py, "info", ())
                .map_err(|e| Error::Python(format!("during python-info: {}", describe(py, &e))))?;
            let d = d
                .cast_into::<PyDict>()
                .map_err(|e| Error::Python(e.to_string()))?;
            let mut out = Vec::new();
            for key in [
                "version",
                "major_minor",
                "abi",
                "soabi",
                "machine",
                "prefix",
                "stdlib",
            ] {
                let v: String = d
                    .get_item(key)
                    .ok()
                    .flatten()
                    .and_then(|v| v.extract().ok())
                    .unwrap_or_default();
                out.push((key.to_string(), v));
            }
            Ok(out)
        })
    }

    /// Rebuilds `sys.path` from the stdlib base: plugin directories first (as a
    /// script's directory comes first), then the stdlib, then each site
    /// directory through `site.addsitedir`, then the system site-packages when
    /// asked. Returns the resulting `sys.path`.
    pub fn set_paths(
        &self,
        plugin_dirs: &[PathBuf],
        site_dirs: &[PathBuf],
        system_site: bool,
    ) -> Result<Vec<String>, String> {
        Python::attach(|py| {
            let r = self
                .helper_call(
                    py,
                    "set_paths",
                    (os_strings(plugin_dirs), os_strings(site_dirs), system_site),
                )
                .map_err(|e| format!("during sys.path set-up: {}", describe(py, &e)))?;
            r.extract().map_err(|e: PyErr| e.to_string())
        })
    }

    /// Current `sys.path`.
    pub fn sys_path(&self) -> Vec<String> {
        Python::attach(|py| {
            py.import("sys")
                .and_then(|s| s.getattr("path"))
                .and_then(|p| p.cast_into::<PyList>().map_err(PyErr::from))
                .and_then(|l| l.extract())
                .unwrap_or_default()
        })
    }

    /// Imports the plugin file `path` as its own module `module_name`.
    pub fn load_plugin(&self, module_name: &str, path: &Path) -> Result<Module, String> {
        Python::attach(|py| {
            let m = self
                .helper_call(py, "load_plugin", (module_name, path.as_os_str()))
                .map_err(|e| describe(py, &e))?;
            Ok(Module {
                name: module_name.to_string(),
                module: m.unbind(),
            })
        })
    }

    /// Forgets a plugin module (so a reload imports it afresh).
    pub fn unload_plugin(&self, module: Module) {
        Python::attach(|py| {
            let _ = self.helper_call(py, "unload_plugin", (module.name.as_str(),));
            drop(module);
        });
    }

    /// Whether `module.func` exists and is callable.
    pub fn has_function(&self, module: &Module, func: &str) -> bool {
        Python::attach(|py| {
            module
                .module
                .bind(py)
                .getattr(func)
                .map(|f| f.is_callable())
                .unwrap_or(false)
        })
    }

    /// Calls `module.func()` or `module.func(capsule)`.
    pub fn call(&self, module: &Module, func: Call, arg: Option<&Capsule>) -> CallOutcome {
        Python::attach(|py| {
            let m = module.module.bind(py);
            let f = match m.getattr(func.name()) {
                Ok(f) if f.is_callable() => f,
                _ => return CallOutcome::Missing,
            };
            let r = match arg {
                Some(c) => f.call1((c.capsule.bind(py),)),
                None => f.call0(),
            };
            match r {
                Ok(_) => CallOutcome::Ok,
                Err(e) => CallOutcome::Raised(describe(py, &e)),
            }
        })
    }

    /// The zygote's preload: imports the stdlib modules `names` (those that are
    /// stdlib and not known for import-time side effects), then freezes the
    /// collector's view of everything loaded. Returns how many modules were
    /// added and the names that failed, with why.
    pub fn preload(&self, names: &[String]) -> Result<(usize, Vec<String>), String> {
        Python::attach(|py| {
            let r = self
                .helper_call(py, "preload", (names.to_vec(),))
                .map_err(|e| format!("during the preload: {}", describe(py, &e)))?;
            r.extract().map_err(|e: PyErr| e.to_string())
        })
    }

    /// The stdlib's top-level module names (`sys.stdlib_module_names`).
    pub fn stdlib_names(&self) -> Vec<String> {
        Python::attach(|py| {
            self.helper_call(py, "stdlib_names", ())
                .and_then(|r| r.extract())
                .unwrap_or_default()
        })
    }

    /// `os.fork()` (with Python's own before/after-fork handling); in the
    /// child, `OPENPLC_PLUGIN_STATE_DIR` is set to `state_dir` (or removed).
    /// Call only while this process has a single thread.
    pub fn fork(&self, state_dir: Option<&Path>) -> Result<u32, String> {
        Python::attach(|py| {
            let r = self
                .helper_call(
                    py,
                    "fork",
                    (crate::plugin_state::ENV_VAR, state_dir.map(Path::as_os_str)),
                )
                .map_err(|e| describe(py, &e))?;
            r.extract().map_err(|e: PyErr| e.to_string())
        })
    }

    /// The preloaded top-level modules that the current `sys.path` (and the
    /// finders its `.pth` files added) would import from somewhere else.
    pub fn preload_shadowed(&self) -> Result<Vec<String>, String> {
        Python::attach(|py| {
            let r = self
                .helper_call(py, "preload_shadowed", ())
                .map_err(|e| describe(py, &e))?;
            r.extract().map_err(|e: PyErr| e.to_string())
        })
    }

    /// Forgets every preloaded module: this process then imports as a fresh
    /// interpreter would.
    pub fn drop_preload(&self) -> Result<(), String> {
        Python::attach(|py| {
            self.helper_call(py, "drop_preload", ())
                .map(|_| ())
                .map_err(|e| describe(py, &e))
        })
    }

    /// The stdlib modules loaded in this process (sorted names); in a worker
    /// forked from the zygote, only those it loaded itself.
    pub fn stdlib_loaded(&self) -> Vec<String> {
        Python::attach(|py| {
            self.helper_call(py, "stdlib_loaded", ())
                .and_then(|r| r.extract())
                .unwrap_or_default()
        })
    }

    /// Flushes Python's stdout/stderr (before the process exits without
    /// finalising the interpreter).
    pub fn flush_stdio(&self) {
        Python::attach(|py| {
            let _ = self.helper_call(py, "flush_stdio", ());
        });
    }
}

/// A `openplc_runtime_args` capsule and the struct it points at. The struct
/// lives as long as the process (see `Image::runtime_args`): a plugin may keep
/// the capsule, or the pointer, past its `cleanup`.
pub struct Capsule {
    capsule: Py<PyCapsule>,
    args: NonNull<RuntimeArgs>,
}

// SAFETY: the struct is never mutated after creation; its pointers lead into
// the process-global image and to `extern "C"` functions, all valid for the
// life of the process and safe to use from any thread (the image has its own
// lock). The capsule object is a `Py<T>`, which is Send + Sync.
unsafe impl Send for Capsule {}
// SAFETY: as above: shared access is read-only.
unsafe impl Sync for Capsule {}

impl Capsule {
    /// Wraps `args` (from `Image::runtime_args`, valid for the life of the
    /// process) in a capsule named [`CAPSULE_NAME`].
    pub fn new(args: NonNull<RuntimeArgs>) -> Result<Capsule, String> {
        let ptr = args.cast();
        Python::attach(|py| {
            // SAFETY: `ptr` is never freed (Image::runtime_args leaks it), so
            // the capsule may outlive this value and its plugin.
            let capsule = unsafe { PyCapsule::new_with_pointer(py, ptr, CAPSULE_NAME) }
                .map_err(|e| describe(py, &e))?;
            Ok(Capsule {
                capsule: capsule.unbind(),
                args,
            })
        })
    }

    /// The struct behind the capsule (the plugin may write to it; read it
    /// with that in mind).
    pub fn args(&self) -> NonNull<RuntimeArgs> {
        self.args
    }
}

/// The per-plugin module name: stable, unique per plugin name, and a valid
/// identifier (so tracebacks and `__name__` read well).
pub fn module_name(plugin: &str) -> String {
    let mut s = String::from("openplc_plugin_");
    for c in plugin.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            s.push(c);
        } else {
            s.push_str(&format!("_x{:x}_", c as u32));
        }
    }
    s
}
