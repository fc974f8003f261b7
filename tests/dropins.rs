//! plugins.conf drop-ins with the real binary and real plugin files, laid
//! out as on an image in a staged root (`--root`): precedence and masking
//! (`/dev/null` and empty files), order across directories, relative and
//! absolute paths, duplicate names across files, a run whose main file is
//! absent, and SIGHUP adding and masking plugins while another keeps running,
//! then a broken drop-in that changes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const USR: &str = "usr/lib/openplc/plugins.conf.d";
const ETC: &str = "etc/openplc/plugins.conf.d";
const VAR: &str = "var/lib/openplc/plugins.conf.d";

/// A staged root with the probe plugin installed as a package would install
/// it, and the record file of its calls.
struct Root {
    dir: TempDir,
}

impl Root {
    fn new(tag: &str) -> Root {
        let dir = TempDir::new(tag);
        let plugin_dir = dir.join("usr/lib/openplc/plugins/probe");
        std::fs::create_dir_all(&plugin_dir).unwrap();
        std::fs::copy(fixture_plugin("probe"), plugin_dir.join("plugin.py")).unwrap();
        // The probe's helpers, beside it as its `sys.path` trick expects.
        for f in [
            "tests/fixtures/plugins/probe_lib.py",
            "examples/plugins/openplc_capsule.py",
        ] {
            let name = Path::new(f).file_name().unwrap();
            std::fs::copy(repo().join(f), plugin_dir.with_file_name(name)).unwrap();
        }
        std::fs::create_dir_all(dir.join("etc/openplc")).unwrap();
        Root { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn main_conf(&self) -> PathBuf {
        self.dir.join("etc/openplc/plugins.conf")
    }

    /// A probe's config (host path inside, as the plugin reads it) stored at
    /// the target path `/usr/lib/openplc/plugins/probe/ID.json`.
    fn probe_config(&self, id: &str) -> String {
        let target = format!("/usr/lib/openplc/plugins/probe/{id}.json");
        let host = probe_config(self.path(), id, "");
        std::fs::rename(&host, self.dir.join(&target[1..])).unwrap();
        target
    }

    /// The plugins.conf line of probe ID, in absolute target paths.
    fn probe_line(&self, id: &str) -> String {
        format!(
            "{id},/usr/lib/openplc/plugins/probe/plugin.py,1,0,{},",
            self.probe_config(id)
        )
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn mask(&self, rel: &str) {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink("/dev/null", &p).unwrap();
    }

    fn runtime(&self, args: &[&str]) -> (i32, String, String) {
        let out = std::process::Command::new(BIN)
            .args(args)
            .arg("--root")
            .arg(self.path())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn start(&self) -> Runtime {
        Runtime::start(
            &self.main_conf(),
            &[
                "--root",
                self.path().to_str().unwrap(),
                "--log-target",
                "stderr",
            ],
        )
    }
}

#[test]
fn precedence_masking_order_and_origins_in_check() {
    let r = Root::new("dropin-check");
    let root = r.path().display().to_string();
    // Packages: a (50), b (60), z (70), d (80, replaced by the image's 80-d).
    r.write(&format!("{USR}/50-a.conf"), &(r.probe_line("a") + "\n"));
    r.write(&format!("{USR}/60-b.conf"), &(r.probe_line("b") + "\n"));
    r.write(&format!("{USR}/70-z.conf"), &(r.probe_line("z") + "\n"));
    r.write(&format!("{USR}/80-d.conf"), &(r.probe_line("d_old") + "\n"));
    r.write(&format!("{USR}/README"), "not a .conf file: ignored\n");
    // The image masks b with /dev/null and replaces d; the operator masks z
    // with an empty file and adds c, which sorts before a.
    r.mask(&format!("{ETC}/60-b.conf"));
    r.write(
        &format!("{ETC}/80-d.conf"),
        &format!("# the image's d\n\n{}\n", r.probe_line("d")),
    );
    r.write(&format!("{VAR}/70-z.conf"), "");
    // Relative paths are relative to the drop-in's own directory.
    r.write(
        &format!("{VAR}/40-c.conf"),
        &format!(
            "c,../../../../usr/lib/openplc/plugins/probe/plugin.py,1,0,{},\n",
            r.probe_config("c")
        ),
    );
    // The main file exists and comes first.
    r.write("etc/openplc/plugins.conf", &(r.probe_line("m") + "\n"));

    let (code, out, err) = r.runtime(&["check"]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "{root}/etc/openplc/plugins.conf: 4 plugin line(s), Python {}, isolation shared",
            python_info()["version"]
        ),
        "{out}"
    );
    let sources: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("source: "))
        .collect();
    assert_eq!(
        sources,
        [
            format!("{root}/etc/openplc/plugins.conf: read"),
            format!("{root}/{VAR}/40-c.conf: read"),
            format!("{root}/{USR}/50-a.conf: read"),
            format!("{root}/{USR}/60-b.conf: overridden by {root}/{ETC}/60-b.conf"),
            format!("{root}/{ETC}/60-b.conf: masked (empty or a link to /dev/null)"),
            format!("{root}/{USR}/70-z.conf: overridden by {root}/{VAR}/70-z.conf"),
            format!("{root}/{VAR}/70-z.conf: masked (empty or a link to /dev/null)"),
            format!("{root}/{USR}/80-d.conf: overridden by {root}/{ETC}/80-d.conf"),
            format!("{root}/{ETC}/80-d.conf: read"),
        ],
        "{out}"
    );
    // The merged list: main file, then drop-ins by name across directories.
    let plugins: Vec<&str> = lines
        .iter()
        .filter(|l| {
            !l.starts_with("source: ") && !l.starts_with(&root) && !l.starts_with("python: ")
        })
        .copied()
        .collect();
    let ok = |name: &str, origin: String| {
        format!("{name}: ok (python, no venv, imports, has init), {origin}")
    };
    assert_eq!(
        plugins,
        [
            ok("m", format!("{root}/etc/openplc/plugins.conf:1")),
            ok("c", format!("{root}/{VAR}/40-c.conf:1")),
            ok("a", format!("{root}/{USR}/50-a.conf:1")),
            ok("d", format!("{root}/{ETC}/80-d.conf:3")),
        ],
        "{out}"
    );
    // check imports but never calls a plugin.
    assert!(record(r.path()).is_empty());
}

#[test]
fn errors_name_the_drop_in_and_line_and_duplicates_both_places() {
    let r = Root::new("dropin-errors");
    let root = r.path().display().to_string();
    r.write(&format!("{USR}/50-a.conf"), &(r.probe_line("a") + "\n"));
    r.write(
        &format!("{ETC}/60-dup.conf"),
        &format!("# comment\n{}\n", r.probe_line("a")),
    );
    r.write(
        &format!("{VAR}/70-bad.conf"),
        "x,/usr/lib/openplc/plugins/probe/plugin.py,yes,0\n\
         y,/usr/lib/openplc/plugins/nothere.py,1,0\n",
    );
    let (code, out, err) = r.runtime(&["check"]);
    assert_eq!(code, 78, "{out}{err}");
    let problems: Vec<&str> = err
        .lines()
        .filter_map(|l| l.strip_prefix("openplc-runtime: "))
        .collect();
    assert_eq!(
        problems,
        [
            format!(
                "{root}/{ETC}/60-dup.conf:2: field 1 (name): duplicate plugin name `a` (first defined on {root}/{USR}/50-a.conf:1); names must be unique"
            ),
            format!("{root}/{VAR}/70-bad.conf:1: field 3 (enabled): `yes` is not 0 or 1"),
            "2 configuration problem(s); nothing was started".to_string(),
        ],
        "{err}"
    );
    // A missing plugin file is found by resolve, with its drop-in's origin.
    r.write(
        &format!("{VAR}/70-bad.conf"),
        "y,/usr/lib/openplc/plugins/nothere.py,1,0\n",
    );
    std::fs::remove_file(r.dir.join(&format!("{ETC}/60-dup.conf"))).unwrap();
    let (code, _, err) = r.runtime(&["check"]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains(&format!(
            "{root}/{VAR}/70-bad.conf:1: field 2 (path): plugin `y`: cannot open {root}/usr/lib/openplc/plugins/nothere.py"
        )),
        "{err}"
    );
    // Neither a main file nor any drop-in: nothing to run is an error that
    // names every place looked in.
    let empty = Root::new("dropin-none");
    let (code, _, err) = empty.runtime(&["check"]);
    assert_eq!(code, 78, "{err}");
    let eroot = empty.path().display();
    assert!(
        err.contains(&format!(
            "{eroot}/etc/openplc/plugins.conf: cannot read plugins.conf: no such file, and no drop-ins in {eroot}/{USR}, {eroot}/{ETC}, {eroot}/{VAR}"
        )),
        "{err}"
    );
}

#[test]
fn capacity_is_shared_across_files() {
    let r = Root::new("dropin-capacity");
    for i in 0..10 {
        r.write(
            &format!("{USR}/{i:02}-p{i}.conf"),
            &format!("p{i},/usr/lib/openplc/plugins/probe/plugin.py,0,0\n"),
        );
    }
    let mut more = String::new();
    for i in 10..17 {
        more.push_str(&format!(
            "p{i},/usr/lib/openplc/plugins/probe/plugin.py,0,0\n"
        ));
    }
    r.write(&format!("{ETC}/99-more.conf"), &more);
    let (code, _, err) = r.runtime(&["check"]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains(&format!(
            "{}/{ETC}/99-more.conf:7: plugin `p16` is plugin number 17, but at most 16 plugins are supported",
            r.path().display()
        )),
        "{err}"
    );
}

#[test]
fn runs_without_main_file_and_reload_adds_masks_and_refuses_broken_drop_ins() {
    let r = Root::new("dropin-run");
    r.write(&format!("{USR}/50-a.conf"), &(r.probe_line("a") + "\n"));
    r.write(
        &format!("{USR}/60-keep.conf"),
        &(r.probe_line("keep") + "\n"),
    );
    let mut rt = r.start();
    rt.wait_log("running: 2 plugin(s) running", Duration::from_secs(30));
    assert!(
        rt.log_text().contains(&format!(
            "plugins.conf: {}: absent",
            r.main_conf().display()
        )),
        "{}",
        rt.log_text()
    );

    // The operator adds `new` and masks `a` in the writable directory.
    r.write(&format!("{VAR}/55-new.conf"), &(r.probe_line("new") + "\n"));
    r.mask(&format!("{VAR}/50-a.conf"));
    rt.signal(libc::SIGHUP);
    rt.wait_log("reload ok: 1 started, 1 stopped", Duration::from_secs(30));

    // A broken drop-in: the running set stays, the log names file and line.
    let bad = r.write(&format!("{VAR}/70-bad.conf"), "# x\nbad,/nope.py,1,9\n");
    rt.signal(libc::SIGHUP);
    rt.wait_log("reload failed", Duration::from_secs(30));
    assert!(
        rt.log_text().contains(&format!(
            "{}:2: field 4 (type): unknown plugin type `9`",
            bad.display()
        )),
        "{}",
        rt.log_text()
    );
    rt.stop_ok();
    assert_eq!(
        lifecycle(r.path()),
        [
            "a:init",
            "keep:init",
            "a:start_loop",
            "keep:start_loop",
            // reload: a is masked away, new is added; keep is untouched
            "a:stop_loop",
            "a:cleanup",
            "new:init",
            "new:start_loop",
            // the broken reload changed nothing; shutdown in reverse order
            // of the drop-ins' names: 60-keep after 55-new
            "keep:stop_loop",
            "new:stop_loop",
            "keep:cleanup",
            "new:cleanup",
        ]
    );
}

/// `check --root` of an image for another CPU: the venvs are checked against
/// the root's Python (found from its stdlib and its ELF interpreter), and
/// nothing is imported or loaded, which the listing says.
#[test]
fn check_root_of_another_cpu_checks_versions_and_imports_nothing() {
    let r = Root::new("dropin-foreign");
    let root = r.path().display().to_string();
    // The root's Python 3.13 for aarch64: its stdlib and an ELF header of
    // an aarch64 executable (e_machine 183), reached through python3 links.
    r.write("usr/lib/python3.13/os.py", "# stdlib marker\n");
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // 64-bit
    elf[5] = 1; // little-endian
    elf[6] = 1;
    elf[16] = 2; // ET_EXEC
    elf[18..20].copy_from_slice(&183u16.to_le_bytes());
    std::fs::create_dir_all(r.dir.join("usr/bin")).unwrap();
    std::fs::write(r.dir.join("usr/bin/python3.13"), &elf).unwrap();
    // A venv as scripts/build-target-venv makes it, for 3.13 …
    let venv =
        |name: &str, version: &str| {
            r.write(
                &format!("usr/lib/openplc/venvs/{name}/pyvenv.cfg"),
                &format!(
                    "home = /usr/bin\ninclude-system-site-packages = false\nversion = {version}\n"
                ),
            );
            let xy = version.rsplit_once('.').map_or(version, |(a, _)| a);
            std::fs::create_dir_all(r.dir.join(
                format!("usr/lib/openplc/venvs/{name}/lib/python{xy}/site-packages").as_str(),
            ))
            .unwrap();
        };
    venv("good", "3.13.5");
    r.write(
        &format!("{USR}/50-good.conf"),
        "good,/usr/lib/openplc/plugins/probe/plugin.py,1,0,,/usr/lib/openplc/venvs/good\n",
    );
    let (code, out, err) = r.runtime(&["check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "python: the root's Python is 3.13 (/usr/bin/python3.13, aarch64), this runtime embeds Python {} on {}: nothing is imported",
            python_info()["version"],
            std::env::consts::ARCH
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "good: ok (python, venv {root}/usr/lib/openplc/venvs/good (0 distributions), not imported), {root}/{USR}/50-good.conf:1"
        )),
        "{out}"
    );
    // … and one built for another Python: refused, naming the plugin and venv.
    venv("old", "3.12.1");
    r.write(
        &format!("{USR}/60-old.conf"),
        "old,/usr/lib/openplc/plugins/probe/plugin.py,1,0,,/usr/lib/openplc/venvs/old\n",
    );
    let (code, out, err) = r.runtime(&["check"]);
    assert_eq!(code, 78, "{out}{err}");
    assert!(
        err.contains(&format!(
            "{root}/{USR}/60-old.conf:1: field 6 (venv_path): plugin `old`: venv {root}/usr/lib/openplc/venvs/old was made by Python 3.12.1, but the runtime embeds Python 3.13.0"
        )),
        "{err}"
    );
}
