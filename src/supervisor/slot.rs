//! A plugin at run time as the supervisor tracks it: one [`State`], and in
//! each state exactly what that state holds. What runs the plugin's code (its
//! module, its worker process or its library, the [`Runner`]) exists only in
//! the states where the plugin is loaded.

use std::sync::Arc;
use std::time::Instant;

use crate::isolation::Worker;
use crate::native::NativePlugin;
use crate::python::{Capsule, Module};
use crate::resolve::Plugin;

/// A plugin at run time.
pub(super) struct Slot {
    pub(super) plugin: Plugin,
    /// Callback slot (0..MAX_PLUGINS): selects the log/stop callbacks that
    /// know this plugin's name.
    pub(super) index: usize,
    /// Consecutive deaths of its worker process (reset after a healthy run).
    pub(super) restarts: u32,
    pub(super) state: State,
    /// A worker already forked for this slot's next load, importing its
    /// plugin while the slots before it are loaded (process isolation,
    /// start-up and reload).
    pub(super) prestarted: Option<Arc<Worker>>,
}

/// What runs a loaded plugin's code.
pub(super) enum Runner {
    /// `--isolation shared`: its module in the supervisor's interpreter, and
    /// the capsule its `init` receives (which the plugin may keep).
    Python {
        module: Arc<Module>,
        capsule: Arc<Capsule>,
    },
    /// `--isolation process`: the worker process that imports and runs it.
    Worker(Arc<Worker>),
    /// A native plugin (type 1): its library and args struct.
    Native(NativePlugin),
}

/// Where a plugin is in its life.
pub(super) enum State {
    /// Nothing of it is loaded: not yet, or its load failed, or its worker is
    /// gone.
    Unloaded,
    /// Loaded (imported, `dlopen`ed, or its worker process started): `init`
    /// ran or is about to, so `cleanup` is owed. Not running: `init` or
    /// `start_loop` failed, or it was stopped.
    Loaded(Runner),
    /// `init` returned successfully; `start_loop` is next.
    Initialized(Runner),
    /// `start_loop` returned: running.
    Started(Runner),
    /// `cleanup` returned. A Python module stays imported and its capsule
    /// allocated until a reload drops the slot: threads the plugin did not
    /// join may still use them.
    CleanedUp(Runner),
    /// A call overran its budget and may still be running: nothing of the
    /// plugin is called or unloaded any more.
    Stuck(Option<Runner>),
    /// Its worker process died; it is loaded again at this time.
    Restarting(Instant),
    /// Its worker died too often in a row; it stays failed until the service
    /// restarts.
    GaveUp,
}

impl State {
    /// The runner of a plugin that can still be called.
    pub(super) fn runner(&self) -> Option<&Runner> {
        match self {
            State::Loaded(r) | State::Initialized(r) | State::Started(r) => Some(r),
            _ => None,
        }
    }

    /// Takes the runner out of any state that holds one (leaving `Unloaded`).
    pub(super) fn take_runner(&mut self) -> Option<Runner> {
        match std::mem::replace(self, State::Unloaded) {
            State::Loaded(r)
            | State::Initialized(r)
            | State::Started(r)
            | State::CleanedUp(r)
            | State::Stuck(Some(r)) => Some(r),
            other => {
                *self = other;
                None
            }
        }
    }
}

impl Slot {
    pub(super) fn new(plugin: Plugin, index: usize) -> Slot {
        Slot {
            plugin,
            index,
            restarts: 0,
            state: State::Unloaded,
            prestarted: None,
        }
    }

    pub(super) fn name(&self) -> &str {
        self.plugin.name()
    }

    /// Its worker process, while it has one that can be called.
    pub(super) fn worker(&self) -> Option<&Arc<Worker>> {
        match self.state.runner() {
            Some(Runner::Worker(w)) => Some(w),
            _ => None,
        }
    }

    /// Running: `start_loop` returned.
    pub(super) fn is_started(&self) -> bool {
        matches!(self.state, State::Started(_))
    }

    /// `init` succeeded and nothing failed since (it is started, or about to
    /// be); everything else counts as failed.
    pub(super) fn is_up(&self) -> bool {
        matches!(self.state, State::Initialized(_) | State::Started(_))
    }

    /// A call of it overran and may still be running.
    pub(super) fn is_stuck(&self) -> bool {
        matches!(self.state, State::Stuck(_))
    }
}
