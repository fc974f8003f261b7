//! SIGHUP: re-read plugins.conf and apply the difference to the running set.
//! What happens to each plugin (keep, stop, restart, start, or hold until the
//! service restarts) is decided by a pure function of the running set and the
//! new plan, [`decide`]; applying it (stop order, callback slots, sys.path,
//! start order) is the supervisor's.

use std::sync::Arc;

use super::slot::{Runner, Slot};
use super::{Supervisor, plan};
use crate::config::{self, PluginEntry};
use crate::error::Error;
use crate::resolve::{Isolation, Plan, Plugin};

/// A plugin of the running set, as the reload decision sees it.
pub(super) struct Running<'a> {
    pub(super) entry: &'a PluginEntry,
    /// `init` succeeded and nothing failed since.
    pub(super) up: bool,
    /// A call of it is still running past its budget.
    pub(super) stuck: bool,
}

/// What a reload does with one plugin (by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// Unchanged and up: left alone.
    Keep(String),
    /// Gone from the file: stopped.
    Stop(String),
    /// Changed, or failed: stopped, then started from its new entry.
    Restart(String),
    /// New in the file: started.
    Start(String),
    /// Left as it is: the change takes effect only when the service restarts.
    Hold(String, Hold),
}

/// Why a changed plugin is left as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hold {
    /// Its venv changed in shared isolation: one interpreter cannot drop the
    /// packages it imported from the old venv, so saying "reloaded" would be a
    /// lie.
    VenvChanged,
    /// A call of it is still running past its budget: it cannot be stopped.
    CallRunning,
}

impl Hold {
    fn why(self) -> &'static str {
        match self {
            Hold::VenvChanged => "venv changed",
            Hold::CallRunning => "a call is still running",
        }
    }
}

/// Same plugins.conf entry, apart from where it is written (file and line:
/// a plugin moved to another drop-in, unchanged, keeps running).
fn same_entry(a: &PluginEntry, b: &PluginEntry) -> bool {
    a.path == b.path
        && a.kind == b.kind
        && a.config_path == b.config_path
        && a.venv_path == b.venv_path
}

/// The reload decision: for each running plugin (in running order) what
/// happens to it, then a `Start` for each plugin of `plan` that is not
/// running (in file order).
pub(super) fn decide(
    running: &[Running<'_>],
    plan: &[Plugin],
    isolation: Isolation,
) -> Vec<Action> {
    let mut actions: Vec<Action> = running
        .iter()
        .map(|r| {
            let name = r.entry.name.to_string();
            match plan.iter().find(|p| p.entry.name == r.entry.name) {
                Some(p) if same_entry(r.entry, &p.entry) && r.up => Action::Keep(name),
                _ if r.stuck => Action::Hold(name, Hold::CallRunning),
                None => Action::Stop(name),
                Some(p)
                    if isolation == Isolation::Shared && r.entry.venv_path != p.entry.venv_path =>
                {
                    Action::Hold(name, Hold::VenvChanged)
                }
                Some(_) => Action::Restart(name),
            }
        })
        .collect();
    actions.extend(
        plan.iter()
            .filter(|p| !running.iter().any(|r| r.entry.name == p.entry.name))
            .map(|p| Action::Start(p.name().to_string())),
    );
    actions
}

impl Supervisor {
    /// SIGHUP: re-read plugins.conf; apply the difference, or keep everything
    /// running as it is when the new file is invalid.
    pub(super) fn reload(&mut self) {
        self.reload_pending = false;
        self.notifier.reloading();
        log::info!(
            "SIGHUP: reloading {} and its drop-ins",
            self.opts.config.display()
        );
        let new_plan = match plan(&self.opts) {
            Ok(p) => p,
            Err(e) => {
                let list = match e {
                    Error::Config(l) => l,
                    other => vec![other.to_string()],
                };
                for m in &list {
                    log::error!("reload: {m}");
                }
                log::error!(
                    "reload failed: {} problem(s) in {} or its drop-ins; the running plugins are unchanged",
                    list.len(),
                    self.opts.config.display()
                );
                // STATUS= carries the first problem, so `systemctl status`
                // says which file and line without a look at the journal.
                let first = list
                    .first()
                    .and_then(|m| m.lines().next())
                    .unwrap_or_default();
                self.last_reload = Some(format!(
                    "reload failed ({} problem(s) in plugins.conf), running set unchanged: {first}",
                    list.len()
                ));
                let status = self.status_line();
                self.notifier.ready(&status);
                return;
            }
        };

        let running: Vec<Running<'_>> = self
            .slots
            .iter()
            .map(|s| Running {
                entry: &s.plugin.entry,
                up: s.is_up(),
                stuck: s.is_stuck(),
            })
            .collect();
        let actions = decide(&running, &new_plan.plugins, self.opts.isolation);
        let restart_needed: Vec<String> = [Hold::VenvChanged, Hold::CallRunning]
            .into_iter()
            .flat_map(|hold| {
                actions.iter().filter_map(move |a| match a {
                    Action::Hold(name, h) if *h == hold => Some(format!("{name} ({})", h.why())),
                    _ => None,
                })
            })
            .collect();
        let stopped: Vec<&str> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Stop(name) | Action::Restart(name) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        let remove: Vec<usize> = (0..self.slots.len())
            .filter(|&i| stopped.contains(&self.slots[i].name()))
            .collect();

        // Stop in reverse order; a Python module is dropped from the
        // interpreter once nothing of it runs.
        let mut order = remove.clone();
        order.reverse();
        self.stop_slots(&order, false);
        for &i in &order {
            match self.slots[i].state.take_runner() {
                Some(Runner::Python { module, .. }) => {
                    if let Ok(m) = Arc::try_unwrap(module)
                        && let Some(interp) = &self.interp
                    {
                        interp.unload_plugin(m);
                    }
                }
                Some(Runner::Worker(w)) => self.retire(i, &w, false),
                _ => {}
            }
        }
        let mut kept: Vec<Slot> = Vec::new();
        for (i, s) in std::mem::take(&mut self.slots).into_iter().enumerate() {
            if !remove.contains(&i) {
                kept.push(s);
            }
        }

        // The new set in file order: kept slots stay, new ones get free
        // callback indices.
        let mut next: Vec<Slot> = Vec::new();
        let mut fresh: Vec<usize> = Vec::new();
        for p in &new_plan.plugins {
            if let Some(pos) = kept.iter().position(|s| s.name() == p.name()) {
                next.push(kept.remove(pos));
            } else {
                let used: Vec<usize> = next.iter().chain(kept.iter()).map(|s| s.index).collect();
                let Some(index) = (0..config::MAX_PLUGINS).find(|i| !used.contains(i)) else {
                    log::error!("[{}] no free plugin slot; restart the service", p.name());
                    continue;
                };
                fresh.push(next.len());
                next.push(Slot::new(p.clone(), index));
            }
        }
        // Stuck plugins that were removed from the file stay tracked.
        next.extend(kept);
        let added = fresh.len();
        let removed = order.len();
        // New plugins start after the kept ones, each init before any start.
        let (new_slots, mut others): (Vec<_>, Vec<_>) = next
            .into_iter()
            .enumerate()
            .partition(|(k, _)| fresh.contains(k));
        let first_new = others.len();
        others.extend(new_slots);
        self.slots = others.into_iter().map(|(_, s)| s).collect();

        // Held plugins keep their old entry (and venv) in their slot.
        let active_plan = Plan {
            conf: new_plan.conf.clone(),
            plugins: self.slots.iter().map(|s| s.plugin.clone()).collect(),
        };
        if let Some(interp) = &self.interp {
            match interp.set_paths(
                &active_plan.plugin_dirs(),
                &active_plan.site_dirs(),
                active_plan.system_site(),
            ) {
                Ok(p) => log::debug!("sys.path: {p:?}"),
                Err(e) => log::error!("reload: {e}"),
            }
        }
        self.start_slots(first_new..self.slots.len());
        // File order again, for the stop order.
        let order_of = |n: &str| {
            new_plan
                .plugins
                .iter()
                .position(|p| p.name() == n)
                .unwrap_or(usize::MAX)
        };
        self.slots.sort_by_key(|s| order_of(s.name()));

        for r in &restart_needed {
            log::warn!("reload: {r}: this change takes effect only when the service restarts");
        }
        self.restart_needed = restart_needed;
        let summary = format!("reload ok: {added} started, {removed} stopped");
        log::info!("{summary}");
        self.last_reload = Some(summary);
        let status = self.status_line();
        self.notifier.ready(&status);
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::PluginKind;

    fn plugin(name: &str, path: &str, venv: Option<&str>) -> Plugin {
        Plugin {
            entry: PluginEntry {
                file: PathBuf::from("/etc/openplc/plugins.conf"),
                line: 1,
                name: name.try_into().unwrap(),
                path: PathBuf::from(path),
                enabled: true,
                kind: PluginKind::Python,
                config_path: None,
                venv_path: venv.map(PathBuf::from),
            },
            venv: None,
        }
    }

    fn up(p: &Plugin) -> Running<'_> {
        Running {
            entry: &p.entry,
            up: true,
            stuck: false,
        }
    }

    fn names(actions: &[Action]) -> Vec<String> {
        actions.iter().map(|a| format!("{a:?}")).collect()
    }

    #[test]
    fn unchanged_and_up_is_kept_even_on_another_line() {
        let old = plugin("a", "/p/a.py", None);
        let mut new = old.clone();
        new.entry.line = 7;
        let actions = decide(&[up(&old)], &[new], Isolation::Shared);
        assert_eq!(actions, vec![Action::Keep("a".into())]);
    }

    #[test]
    fn gone_from_the_file_is_stopped() {
        let old = plugin("a", "/p/a.py", None);
        assert_eq!(
            decide(&[up(&old)], &[], Isolation::Shared),
            vec![Action::Stop("a".into())]
        );
    }

    #[test]
    fn new_in_the_file_is_started_in_file_order_after_the_running_ones() {
        let a = plugin("a", "/p/a.py", None);
        let (c, b) = (plugin("c", "/p/c.py", None), plugin("b", "/p/b.py", None));
        let actions = decide(
            &[up(&a)],
            &[c.clone(), a.clone(), b.clone()],
            Isolation::Shared,
        );
        assert_eq!(
            names(&actions),
            ["Keep(\"a\")", "Start(\"c\")", "Start(\"b\")"]
        );
    }

    #[test]
    fn changed_entry_is_restarted() {
        let old = plugin("a", "/p/a.py", None);
        for new in [
            plugin("a", "/q/a.py", None),
            Plugin {
                entry: PluginEntry {
                    config_path: Some("/etc/a.json".into()),
                    ..old.entry.clone()
                },
                venv: None,
            },
            Plugin {
                entry: PluginEntry {
                    kind: PluginKind::Native,
                    ..old.entry.clone()
                },
                venv: None,
            },
        ] {
            assert_eq!(
                decide(&[up(&old)], &[new], Isolation::Shared),
                vec![Action::Restart("a".into())]
            );
        }
    }

    #[test]
    fn failed_plugin_is_restarted_even_when_unchanged() {
        let old = plugin("a", "/p/a.py", None);
        let failed = Running {
            up: false,
            ..up(&old)
        };
        assert_eq!(
            decide(&[failed], std::slice::from_ref(&old), Isolation::Shared),
            vec![Action::Restart("a".into())]
        );
    }

    #[test]
    fn venv_change_is_held_in_shared_and_restarted_in_process_isolation() {
        let old = plugin("a", "/p/a.py", Some("/v/1"));
        let new = plugin("a", "/p/a.py", Some("/v/2"));
        assert_eq!(
            decide(&[up(&old)], std::slice::from_ref(&new), Isolation::Shared),
            vec![Action::Hold("a".into(), Hold::VenvChanged)]
        );
        assert_eq!(
            decide(&[up(&old)], &[new], Isolation::Process),
            vec![Action::Restart("a".into())]
        );
    }

    #[test]
    fn stuck_plugin_is_held_whether_changed_removed_or_venv_changed() {
        let old = plugin("a", "/p/a.py", Some("/v/1"));
        let stuck = || Running {
            entry: &old.entry,
            up: false,
            stuck: true,
        };
        for plan in [
            vec![],
            vec![old.clone()],
            vec![plugin("a", "/q/a.py", Some("/v/1"))],
            vec![plugin("a", "/p/a.py", Some("/v/2"))],
        ] {
            for isolation in [Isolation::Shared, Isolation::Process] {
                assert_eq!(
                    decide(&[stuck()], &plan, isolation),
                    vec![Action::Hold("a".into(), Hold::CallRunning)],
                    "{plan:?} {isolation}"
                );
            }
        }
    }

    #[test]
    fn every_running_plugin_gets_one_action_in_running_order() {
        let (a, b, c) = (
            plugin("a", "/p/a.py", None),
            plugin("b", "/p/b.py", None),
            plugin("c", "/p/c.py", None),
        );
        let plan = [
            plugin("c", "/q/c.py", None),
            a.clone(),
            plugin("d", "/p/d.py", None),
        ];
        let actions = decide(&[up(&a), up(&b), up(&c)], &plan, Isolation::Shared);
        assert_eq!(
            names(&actions),
            [
                "Keep(\"a\")",
                "Stop(\"b\")",
                "Restart(\"c\")",
                "Start(\"d\")"
            ]
        );
    }
}
