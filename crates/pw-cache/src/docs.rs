//! The guides of pw-cache, as rustdoc pages: each submodule is one file of the repository's
//! `docs/` directory, included whole (the package carries the files), so the same text reads
//! on docs.rs, in `cargo doc` and in the repository.
//!
//! | module | file | what |
//! |---|---|---|
//! | [`architecture`] | `docs/architecture.md` | the layers, the manager's paths (get, put, demotion, degradation), where each thing lives: start here |
//! | [`migrating_from_proxywhirl`] | `docs/migrating-from-proxywhirl.md` | every way the manager differs from proxywhirl 0.3.3's `CacheManager`, and running both on one cache |
//! | [`warm`] | `docs/warm.md` | warm files: what [`CacheManager::warm_from_file`](crate::CacheManager::warm_from_file) reads and skips |
//! | [`formats`] | `docs/formats.md` | every file and Redis layout, precisely enough to write a reader or a writer |
//! | [`security`] | `docs/security.md` | what is encrypted, keys, rotation, the threat model |
//! | [`reliability`] | `docs/reliability.md` | the guarantees, and the tests that prove them |
//! | [`performance`] | `docs/performance.md` | measurements against proxywhirl, moka, quick_cache and raw SQLite |
//! | [`fleet`] | `docs/fleet.md` | many hosts on one Redis L3 (cargo feature `redis`) |
//!
//! Links between these pages go to the pages here. Paths such as `tests/fleet/main.rs` or
//! `crates/pw-cache-tiers/src/...` name files of the repository, not of this package.
//!
//! # Repository only
//!
//! Two files of `docs/` are not here: `docs/cli.md`, the operator commands (a program of the
//! repository, not part of this library), and `docs/python.md`, the Python package built on this
//! crate (`crates/pw-cache-py`, not published on crates.io). A link to either from the pages
//! above comes to this section.

// The pages link to each other as `[text][formats.md#anchor]`, with the definitions
// (`[formats.md#anchor]: formats.md#anchor`) at the end of each file for the repository's
// readers. Each page below is preceded by these definitions: the first definition of a label
// wins (CommonMark), so here the same labels are intra-doc links to the modules.
macro_rules! page_links {
    () => {
        "[architecture.md]: crate::docs::architecture\n\
         [migrating-from-proxywhirl.md]: crate::docs::migrating_from_proxywhirl\n\
         [warm.md]: crate::docs::warm\n\
         [formats.md]: crate::docs::formats\n\
         [formats.md#redis-l3]: crate::docs::formats#redis-l3\n\
         [security.md]: crate::docs::security\n\
         [reliability.md]: crate::docs::reliability\n\
         [performance.md]: crate::docs::performance\n\
         [performance.md#redis-l3-feature-redis]: crate::docs::performance#redis-l3-feature-redis\n\
         [fleet.md]: crate::docs::fleet\n\
         [fleet.md#when-the-indexes-are-damaged]: crate::docs::fleet#when-the-indexes-are-damaged\n\
         [cli.md]: crate::docs#repository-only\n\
         [python.md]: crate::docs#repository-only\n\n"
    };
}

#[doc = page_links!()]
#[doc = include_str!("../docs/architecture.md")]
pub mod architecture {}

#[doc = page_links!()]
#[doc = include_str!("../docs/migrating-from-proxywhirl.md")]
pub mod migrating_from_proxywhirl {}

#[doc = page_links!()]
#[doc = include_str!("../docs/warm.md")]
pub mod warm {}

#[doc = page_links!()]
#[doc = include_str!("../docs/formats.md")]
pub mod formats {}

#[doc = page_links!()]
#[doc = include_str!("../docs/security.md")]
pub mod security {}

#[doc = page_links!()]
#[doc = include_str!("../docs/reliability.md")]
pub mod reliability {}

#[doc = page_links!()]
#[doc = include_str!("../docs/performance.md")]
pub mod performance {}

#[doc = page_links!()]
#[doc = include_str!("../docs/fleet.md")]
pub mod fleet {}
