//! The layout of `src/` keeps the rule of docs/ARCHITECTURE.md ("Inside
//! each crate"): no import circle between the crate's files. The map of
//! where things live is in `src/lib.rs`.

use std::path::Path;
use vitals_test_support::import_graph;

#[test]
fn no_file_of_src_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph::no_import_cycle(&src).unwrap_or_else(|circles| panic!("{circles}"));
    // The check read the crate: a parser that found no import would pass.
    let imports = |from: &str, to: &str| graph.get(from).is_some_and(|m| m.contains_key(to));
    // Handlers reach the collector's state, not the router above them.
    assert!(
        imports("server/batches.rs", "server/state.rs"),
        "{graph:#?}"
    );
    assert!(imports("server/mod.rs", "server/batches.rs"), "{graph:#?}");
    // Back ends import the trait and error from their own files.
    assert!(
        imports("store/sqlite/mod.rs", "store/contract.rs"),
        "{graph:#?}"
    );
    assert!(
        imports("store/hot_tier/keys.rs", "store/error.rs"),
        "{graph:#?}"
    );
    assert!(
        imports("store/postgres/write.rs", "store/postgres/pool.rs"),
        "{graph:#?}"
    );
    assert!(
        imports("config/environment.rs", "config/error.rs"),
        "{graph:#?}"
    );
    assert!(imports("server/state.rs", "ingest/limits.rs"), "{graph:#?}");
    assert!(!graph.contains_key("lib.rs"));
}
