//! The fault suites, one module each, and the registry `main` dispatches through. Adding a
//! suite is one new file in `suites/` with a `pub(crate) async fn run(Suite)` and a `SUMMARY`,
//! its `mod` line and its name in the [`registry!`] list below. The modules are declared by
//! hand, not by the macro, so that `cargo fmt` (which does not follow modules a macro declares)
//! formats them; a name listed without its module does not compile, and a module left out of
//! the list is dead code, which clippy refuses.

use std::future::Future;
use std::pin::Pin;

use crate::harness::suite::Suite;

/// What running a suite returns: whether it passed.
pub(crate) type Outcome = Pin<Box<dyn Future<Output = anyhow::Result<bool>>>>;

/// One suite: its command-line name, a line of what it does, and how to run it.
pub(crate) struct Entry {
    pub name: &'static str,
    pub summary: &'static str,
    pub run: fn(Suite) -> Outcome,
}

mod corruptspool;
mod kill9;
mod replicas;
mod restart;
mod sigterm;
mod slowdb;
mod spoolfull;

/// Lists each suite's module in [`ALL`] under the module's name.
macro_rules! registry {
    ($($suite:ident),+ $(,)?) => {
        /// Every suite, in the order `aim-faults --help` lists them.
        pub(crate) const ALL: &[Entry] = &[$(Entry {
            name: stringify!($suite),
            summary: $suite::SUMMARY,
            run: |s| Box::pin($suite::run(s)),
        }),+];
    };
}

registry![
    restart,
    sigterm,
    kill9,
    slowdb,
    spoolfull,
    replicas,
    corruptspool
];

/// The suite of that name; `None` for any other.
pub(crate) fn find(name: &str) -> Option<&'static Entry> {
    ALL.iter().find(|entry| entry.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_suite_is_found_by_its_name_and_unknown_names_are_not() {
        for entry in ALL {
            assert_eq!(find(entry.name).map(|e| e.name), Some(entry.name));
        }
        assert_eq!(ALL.len(), 7);
        assert!(find("kill").is_none());
        assert!(find("").is_none());
    }
}
