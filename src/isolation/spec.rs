//! What a worker runs ([`Spec`]), and its `worker` command line: the
//! arguments of a re-executed worker and the payload of a zygote's fork
//! request alike.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::error::Error;
use crate::image;
use crate::resolve::Plugin;

/// What a worker runs.
#[derive(Debug, Clone)]
pub struct Spec {
    pub plugin: String,
    /// Callback slot (selects the per-plugin log/stop callbacks).
    pub slot: usize,
    pub path: PathBuf,
    pub config_path: Option<PathBuf>,
    pub site_dirs: Vec<PathBuf>,
    pub system_site: bool,
    pub buffer_size: usize,
    pub period_ns: u64,
    pub python_home: Option<PathBuf>,
    /// The plugin's writable directory (`plugin_state`), passed in the
    /// environment as `OPENPLC_PLUGIN_STATE_DIR`.
    pub state_dir: Option<PathBuf>,
}

impl Spec {
    /// The worker of Python plugin `p` in callback slot `slot`, on an image of
    /// `buffer_size` slots scanned every `period_ns`: the daemon's and
    /// `check`'s workers are built alike.
    pub fn for_plugin(
        p: &Plugin,
        slot: usize,
        buffer_size: usize,
        period_ns: u64,
        python_home: Option<PathBuf>,
    ) -> Spec {
        Spec {
            plugin: p.name().to_string(),
            slot,
            path: p.entry.path.clone(),
            config_path: p.entry.config_path.clone(),
            site_dirs: p
                .venv
                .as_ref()
                .map(|v| v.site_dirs.clone())
                .unwrap_or_default(),
            system_site: p.system_site(),
            buffer_size,
            period_ns,
            python_home,
            // Set by the supervisor; `check` imports and writes nothing.
            state_dir: None,
        }
    }
}

impl Spec {
    /// The `worker` command line for this spec, without the descriptors
    /// (also the payload of a zygote's fork request).
    pub fn to_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut pair = |k: &str, v: OsString| {
            a.push(k.into());
            a.push(v);
        };
        pair("--plugin-name", OsString::from(&self.plugin));
        pair("--plugin", self.path.clone().into_os_string());
        pair("--slot", self.slot.to_string().into());
        pair("--buffer-size", self.buffer_size.to_string().into());
        pair("--period-ns", self.period_ns.to_string().into());
        if let Some(c) = &self.config_path {
            pair("--plugin-config", c.clone().into_os_string());
        }
        for d in &self.site_dirs {
            pair("--site-dir", d.clone().into_os_string());
        }
        if let Some(h) = &self.python_home {
            pair("--python-home", h.clone().into_os_string());
        }
        if let Some(d) = &self.state_dir {
            pair("--state-dir", d.clone().into_os_string());
        }
        if self.system_site {
            a.push("--system-site".into());
        }
        a
    }
}

/// Parses the `worker` arguments: the spec, and the image and control
/// descriptors (absent in a zygote's fork request).
pub(crate) fn parse_args(
    args: Vec<OsString>,
) -> Result<(Spec, Option<RawFd>, Option<RawFd>), Error> {
    let mut spec = Spec {
        plugin: String::new(),
        slot: 0,
        path: PathBuf::new(),
        config_path: None,
        site_dirs: Vec::new(),
        system_site: false,
        buffer_size: image::DEFAULT_BUFFER_SIZE,
        period_ns: 0,
        python_home: None,
        state_dir: None,
    };
    let (mut image_fd, mut control_fd) = (None, None);
    let bad = |m: String| {
        Error::Usage(format!(
            "worker: {m} (this command is started by the runtime itself)"
        ))
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let a = a.to_string_lossy().into_owned();
        if a == "--system-site" {
            spec.system_site = true;
            continue;
        }
        let v = it.next().ok_or_else(|| bad(format!("{a} needs a value")))?;
        let num = |v: &OsString| -> Result<u64, Error> {
            v.to_string_lossy()
                .parse()
                .map_err(|_| bad(format!("{a}: not a number")))
        };
        match a.as_str() {
            "--plugin-name" => spec.plugin = v.to_string_lossy().into_owned(),
            "--plugin" => spec.path = PathBuf::from(v),
            "--plugin-config" => spec.config_path = Some(PathBuf::from(v)),
            "--site-dir" => spec.site_dirs.push(PathBuf::from(v)),
            "--python-home" => spec.python_home = Some(PathBuf::from(v)),
            "--state-dir" => spec.state_dir = Some(PathBuf::from(v)),
            "--slot" => spec.slot = num(&v)? as usize,
            "--buffer-size" => spec.buffer_size = num(&v)? as usize,
            "--period-ns" => spec.period_ns = num(&v)?,
            "--image-fd" => image_fd = Some(num(&v)? as RawFd),
            "--control-fd" => control_fd = Some(num(&v)? as RawFd),
            _ => return Err(bad(format!("unknown argument {a}"))),
        }
    }
    if spec.plugin.is_empty() || spec.path.as_os_str().is_empty() {
        return Err(bad("missing --plugin-name or --plugin".into()));
    }
    Ok((spec, image_fd, control_fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zygote's fork request carries the spec as `worker` arguments: every
    /// field must come back as it went.
    #[test]
    fn a_spec_survives_its_arguments() {
        let spec = Spec {
            plugin: "modbus server".into(),
            slot: 7,
            path: PathBuf::from("/usr/lib/openplc/plugins/m/plugin.py"),
            config_path: Some(PathBuf::from("/etc/openplc/m.json")),
            site_dirs: vec![
                PathBuf::from("/v/lib/python3.13/site-packages"),
                PathBuf::from("/v/lib64"),
            ],
            system_site: true,
            buffer_size: 512,
            period_ns: 5_000_000,
            python_home: Some(PathBuf::from("/usr")),
            state_dir: Some(PathBuf::from("/var/lib/openplc/plugins/m")),
        };
        let (back, image, ctl) = parse_args(spec.to_args()).unwrap();
        assert_eq!((image, ctl), (None, None));
        assert_eq!(format!("{back:?}"), format!("{spec:?}"));
        let bare = Spec {
            config_path: None,
            site_dirs: Vec::new(),
            system_site: false,
            python_home: None,
            state_dir: None,
            ..spec
        };
        let (back, _, _) = parse_args(bare.to_args()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{bare:?}"));
    }
}
