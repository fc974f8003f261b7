//! OpenPLC's plugin lifecycle: the four functions a plugin may define, in the
//! order the runtime calls them, and how long each may take. Python plugins (in
//! this process or in a worker) and native plugins are driven by the same
//! [`Call`]s; only the supervisor decides when.

use std::fmt;
use std::time::Duration;

/// Budget for importing a plugin and running its `init`: imports of large
/// libraries on a slow board take seconds; half a minute means it is stuck.
pub const INIT_BUDGET: Duration = Duration::from_secs(30);
/// Budget for `start_loop`, which should only start threads.
pub const START_BUDGET: Duration = Duration::from_secs(10);
/// Budget for `stop_loop` (joining the plugin's threads). Shutdown goes on
/// without a plugin that overruns it; the unit's TimeoutStopSec is longer.
pub const STOP_BUDGET: Duration = Duration::from_secs(5);
/// Budget for `cleanup`.
pub const CLEANUP_BUDGET: Duration = Duration::from_secs(5);

/// A lifecycle function of a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `init(args)`: the only required one; gets the runtime-args struct.
    Init,
    /// `start_loop()`: starts the plugin's threads.
    StartLoop,
    /// `stop_loop()`: stops and joins them.
    StopLoop,
    /// `cleanup()`: releases what `init` took; the last call.
    Cleanup,
}

impl Call {
    /// Every call, in lifecycle order.
    pub const ALL: [Call; 4] = [Call::Init, Call::StartLoop, Call::StopLoop, Call::Cleanup];

    /// The function's name in the plugin (Python attribute, C symbol).
    pub fn name(self) -> &'static str {
        match self {
            Call::Init => "init",
            Call::StartLoop => "start_loop",
            Call::StopLoop => "stop_loop",
            Call::Cleanup => "cleanup",
        }
    }

    /// The call named `name` (as a worker receives it).
    pub fn from_name(name: &str) -> Option<Call> {
        Call::ALL.into_iter().find(|c| c.name() == name)
    }

    /// How long the supervisor waits for it.
    pub fn budget(self) -> Duration {
        match self {
            Call::Init => INIT_BUDGET,
            Call::StartLoop => START_BUDGET,
            Call::StopLoop => STOP_BUDGET,
            Call::Cleanup => CLEANUP_BUDGET,
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Call::ALL {
            assert_eq!(Call::from_name(c.name()), Some(c));
        }
        assert_eq!(Call::from_name("import"), None);
        assert_eq!(Call::StopLoop.to_string(), "stop_loop");
    }
}
