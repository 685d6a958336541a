//! The file-level import graph of a crate's `src/`, and the check that it
//! has no circle (docs/ARCHITECTURE.md, "Inside each crate": no import
//! circles inside a crate).
//!
//! A crate's `tests/layout.rs` calls [`no_import_cycle`] on its `src/`:
//!
//! ```no_run
//! let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
//! vitals_test_support::import_graph::no_import_cycle(&src)
//!     .unwrap_or_else(|circles| panic!("{circles}"));
//! ```
//!
//! What counts as an import of file A by file B: every path of B, in code
//! (`use` items, grouped ones included, and paths in types, expressions,
//! patterns and macro arguments) that starts with `crate::`, `super::`,
//! `self::` or the name of a child module, resolved to the file defining
//! the longest module prefix of it (`a/b.rs` or `a/b/mod.rs`). Comments and
//! doc comments are not code, so a doc link is no import. A `mod x;`
//! declaration is no import.
//!
//! When the name after that prefix is one the file only brings in with a
//! `use` (`crate::model::Bucket`, where `model/mod.rs` has
//! `pub use bucket::Bucket`), the path is followed to the file the name
//! comes from: a facade that only declares and re-exports closes no circle,
//! while a `mod.rs` that defines what its children import and also imports
//! or re-exports them does. `lib.rs` is no node of the graph: a path to an
//! item it defines itself is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// For each file (relative to `src/`, `/`-separated), the files it imports,
/// each with the first path that imports it (`crate::a::B`).
pub type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// The import graph of `src` (a crate's `src/` directory), or, if its
/// files import each other in a circle, an error naming every circle and
/// the paths that close it.
pub fn no_import_cycle(src: &Path) -> Result<Graph, String> {
    let files = read_sources(src).map_err(|e| format!("reading {}: {e}", src.display()))?;
    let graph = import_graph(&files).map_err(|e| format!("{}: {e}", src.display()))?;
    let cycles = import_cycles(&graph);
    if cycles.is_empty() {
        return Ok(graph);
    }
    Err(format!(
        "import circles between the files of {} (each file imports the next; \
         break one edge by moving a type down or passing a narrower argument):\n{}",
        src.display(),
        cycles.join("\n")
    ))
}

/// Every `.rs` file under `src`, as (path relative to `src` with `/`
/// separators, text), sorted by path.
pub fn read_sources(src: &Path) -> std::io::Result<Vec<(String, String)>> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("{prefix}{name}");
            if entry.file_type()?.is_dir() {
                walk(&entry.path(), &format!("{rel}/"), out)?;
            } else if name.ends_with(".rs") {
                out.push((rel, std::fs::read_to_string(entry.path())?));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(src, "", &mut out)?;
    out.sort();
    Ok(out)
}

/// The import graph of `files` (as [`read_sources`] gives them); an error
/// names a file that does not parse.
pub fn import_graph(files: &[(String, String)]) -> Result<Graph, String> {
    let modules: BTreeMap<Vec<String>, String> = files
        .iter()
        .filter_map(|(path, _)| Some((module_of(path)?, path.clone())))
        .collect();
    let mut parsed = BTreeMap::new();
    for (path, text) in files {
        let file = syn::parse_file(text).map_err(|e| format!("{path} does not parse: {e}"))?;
        parsed.insert(path.clone(), file);
    }
    // The names each file binds with a `use` at its top level: `use a::B as
    // C;` binds C to [a, B]. A name bound under different `cfg`s maps to
    // each of its sources.
    let mut found = BTreeMap::new();
    let mut bindings: BTreeMap<&String, Bindings> = BTreeMap::new();
    for (path, file) in &parsed {
        let Some(module) = module_of(path) else {
            continue;
        };
        let mut paths = Paths::new(module, &modules);
        paths.visit_file(file);
        let bound = bindings.entry(path).or_default();
        for f in &paths.found {
            if let (Some(name), true) = (&f.alias, f.top_level) {
                bound
                    .entry(name.clone())
                    .or_default()
                    .push(f.segments.clone());
            }
        }
        found.insert(path, paths.found);
    }
    let mut graph = Graph::new();
    for (path, paths) in found {
        if path == "lib.rs" {
            continue; // no node: what it re-exports is followed
        }
        let imports = graph.entry(path.clone()).or_default();
        for f in paths {
            for target in resolve(&f.segments, &modules, &bindings, 0) {
                if target != *path && target != "lib.rs" {
                    imports.entry(target).or_insert_with(|| f.text.clone());
                }
            }
        }
    }
    Ok(graph)
}

/// One circle per group of files that import each other, as
/// `a.rs -[crate::b::X]-> b.rs -[crate::a::Y]-> a.rs`; empty when there is
/// none.
pub fn import_cycles(graph: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for group in strongly_connected(graph) {
        if group.len() == 1 {
            continue; // a file is never its own import
        }
        // The shortest circle through the group's first file.
        let start = group[0];
        let mut came_from: BTreeMap<&String, &String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        'search: while let Some(file) = queue.pop_front() {
            for next in graph[file].keys() {
                if !group.contains(&next) {
                    continue;
                }
                if next == start {
                    came_from.insert(start, file);
                    break 'search;
                }
                if !came_from.contains_key(next) {
                    came_from.insert(next, file);
                    queue.push_back(next);
                }
            }
        }
        let mut circle = vec![start];
        let mut at = came_from[start];
        while at != start {
            circle.push(at);
            at = came_from[at];
        }
        circle.push(start);
        circle.reverse();
        let mut line = circle[0].clone();
        for pair in circle.windows(2) {
            let _ = write!(line, " -[{}]-> {}", graph[pair[0]][pair[1]], pair[1]);
        }
        out.push(line);
    }
    out
}

/// The module path of a file: `lib.rs` is the root, `a/b.rs` and
/// `a/b/mod.rs` are `a::b`. `None` for a binary's `main.rs` or `bin/`.
fn module_of(path: &str) -> Option<Vec<String>> {
    let stem = path.strip_suffix(".rs")?;
    if stem == "lib" {
        return Some(Vec::new());
    }
    if stem == "main" || stem.starts_with("bin/") {
        return None;
    }
    let stem = stem.strip_suffix("/mod").unwrap_or(stem);
    Some(stem.split('/').map(str::to_owned).collect())
}

/// The names a file binds with a `use`, each to the paths it may come from.
type Bindings = BTreeMap<String, Vec<Vec<String>>>;

/// The files `path` (absolute, without `crate`) leads to: the one defining
/// its longest module prefix, or, when the next name is one that file
/// brings in with a `use`, the files that name comes from.
fn resolve(
    path: &[String],
    modules: &BTreeMap<Vec<String>, String>,
    bindings: &BTreeMap<&String, Bindings>,
    depth: usize,
) -> Vec<String> {
    let Some((n, file)) = (0..=path.len())
        .rev()
        .find_map(|n| Some((n, modules.get(&path[..n])?)))
    else {
        return Vec::new();
    };
    let sources = path
        .get(n)
        .and_then(|name| bindings.get(file)?.get(name))
        .filter(|_| depth < 8);
    let Some(sources) = sources else {
        return vec![file.clone()];
    };
    let mut files = Vec::new();
    for source in sources {
        let mut followed = source.clone();
        followed.extend_from_slice(&path[n + 1..]);
        files.extend(resolve(&followed, modules, bindings, depth + 1));
    }
    files
}

/// A path found in a file: absolute segments (without `crate`), the text
/// it was written as, the name a `use` binds it to, and whether it was
/// written at the file's top level (not in an inline `mod`).
struct Found {
    segments: Vec<String>,
    text: String,
    alias: Option<String>,
    top_level: bool,
}

/// Collects the crate-relative paths of one file, tracking the inline
/// modules (`mod tests { use super::*; }`) they are written in.
struct Paths<'m> {
    module: Vec<String>,
    /// How many inline modules deep the visit is.
    inline: usize,
    modules: &'m BTreeMap<Vec<String>, String>,
    found: Vec<Found>,
}

impl<'m> Paths<'m> {
    fn new(module: Vec<String>, modules: &'m BTreeMap<Vec<String>, String>) -> Self {
        Paths {
            module,
            inline: 0,
            modules,
            found: Vec::new(),
        }
    }

    /// Records `segments` if it names something of this crate: it starts
    /// with `crate`, `super`, `self` or a child module of the current one.
    fn record(&mut self, segments: &[String], alias: Option<String>) {
        let Some(first) = segments.first() else {
            return;
        };
        let mut absolute = match first.as_str() {
            "crate" => Vec::new(),
            "self" | "super" => self.module.clone(),
            _ => {
                let mut child = self.module.clone();
                child.push(first.clone());
                if !self.modules.contains_key(&child) {
                    return;
                }
                self.module.clone()
            }
        };
        let mut rest = segments;
        if matches!(first.as_str(), "crate" | "self") {
            rest = &rest[1..];
        }
        while rest.first().is_some_and(|s| s == "super") {
            absolute.pop();
            rest = &rest[1..];
        }
        absolute.extend_from_slice(rest);
        self.found.push(Found {
            segments: absolute,
            text: segments.join("::"),
            alias,
            top_level: self.inline == 0,
        });
    }

    /// Every path of a `use` tree, grouped ones included.
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let name = n.ident.to_string();
                let mut full = prefix.clone();
                if name != "self" {
                    full.push(name.clone());
                }
                let alias = if name == "self" {
                    full.last().cloned()
                } else {
                    Some(name)
                };
                self.record(&full, alias);
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix.clone();
                if r.ident != "self" {
                    full.push(r.ident.to_string());
                }
                self.record(&full, Some(r.rename.to_string()));
            }
            syn::UseTree::Glob(_) => self.record(prefix, None),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }

    /// `crate::a::b`, `super::x`, `$crate::y` written inside a macro's
    /// arguments, which syn leaves as tokens.
    fn macro_tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => {
                    self.macro_tokens(g.stream());
                    i += 1;
                }
                TokenTree::Ident(id)
                    if matches!(id.to_string().as_str(), "crate" | "super" | "self") =>
                {
                    // `$crate` is a `$` and then this `crate`.
                    let mut segments = vec![id.to_string()];
                    let mut j = i + 1;
                    while let (
                        Some(TokenTree::Punct(a)),
                        Some(TokenTree::Punct(b)),
                        Some(TokenTree::Ident(next)),
                    ) = (tokens.get(j), tokens.get(j + 1), tokens.get(j + 2))
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        segments.push(next.to_string());
                        j += 3;
                    }
                    if segments.len() > 1 {
                        self.record(&segments, None);
                    }
                    i = j;
                }
                _ => i += 1,
            }
        }
    }
}

impl<'ast> Visit<'ast> for Paths<'_> {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if item.content.is_some() {
            self.module.push(item.ident.to_string());
            self.inline += 1;
            syn::visit::visit_item_mod(self, item);
            self.inline -= 1;
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if item.leading_colon.is_none() {
            self.use_tree(&mut Vec::new(), &item.tree);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() && path.segments.len() > 1 {
            let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
            self.record(&segments, None);
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.macro_tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }
}

/// The groups of files that import each other (each reaches every other
/// through imports), each sorted, in the order of their first file.
fn strongly_connected(graph: &Graph) -> Vec<Vec<&String>> {
    let reach: BTreeMap<&String, BTreeSet<&String>> = graph
        .keys()
        .map(|file| (file, reachable(graph, file)))
        .collect();
    let mut grouped = BTreeSet::new();
    let mut groups = Vec::new();
    for file in graph.keys() {
        if grouped.contains(file) {
            continue;
        }
        let mut group: BTreeSet<&String> = reach[file]
            .iter()
            .copied()
            .filter(|other| reach[other].contains(file))
            .collect();
        group.insert(file);
        grouped.extend(group.iter().copied());
        groups.push(group.into_iter().collect());
    }
    groups
}

/// Every file `file` imports, directly or not.
fn reachable<'g>(graph: &'g Graph, file: &String) -> BTreeSet<&'g String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&String> = graph[file].keys().collect();
    while let Some(next) = todo.pop() {
        if seen.insert(next) {
            todo.extend(graph.get(next).into_iter().flat_map(|m| m.keys()));
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(files: &[(&str, &str)]) -> Graph {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        import_graph(&files).expect("the sources parse")
    }

    fn imports(g: &Graph, file: &str) -> Vec<String> {
        g[file].keys().cloned().collect()
    }

    #[test]
    fn every_kind_of_path_is_an_import() {
        let g = graph(&[
            (
                "lib.rs",
                "mod a; mod b; mod c; mod d; mod e; mod f; pub use e::Thing as Renamed;",
            ),
            ("a.rs", "use crate::{b::X, c::{self, Y}};"),
            ("b.rs", "fn f() -> crate::d::T { todo!() }"),
            ("c.rs", "fn f() { assert!(crate::d::ok()); }"),
            ("d.rs", "fn f(_: crate::Renamed) {}"),
            ("e.rs", "mod tests { use super::*; use super::super::f; }"),
            ("f.rs", ""),
        ]);
        assert_eq!(imports(&g, "a.rs"), ["b.rs", "c.rs"]);
        assert_eq!(imports(&g, "b.rs"), ["d.rs"]);
        assert_eq!(imports(&g, "c.rs"), ["d.rs"]);
        assert_eq!(imports(&g, "d.rs"), ["e.rs"], "followed through lib.rs");
        assert_eq!(imports(&g, "e.rs"), ["f.rs"], "super of an inline module");
        assert!(import_cycles(&g).is_empty());
    }

    #[test]
    fn a_name_re_exported_under_two_cfgs_comes_from_both() {
        let g = graph(&[
            (
                "lib.rs",
                "mod a; mod real; mod noop;\n\
                 #[cfg(feature = \"on\")] pub use real::Handle;\n\
                 #[cfg(not(feature = \"on\"))] pub use noop::Handle;",
            ),
            ("a.rs", "use crate::Handle;"),
            ("real.rs", ""),
            ("noop.rs", ""),
        ]);
        assert_eq!(imports(&g, "a.rs"), ["noop.rs", "real.rs"]);
    }

    #[test]
    fn comments_and_doc_links_are_not_imports() {
        let g = graph(&[
            ("lib.rs", "mod a; mod b;"),
            (
                "a.rs",
                "//! See [`X`](crate::b::X).\n// use crate::b::X;\n/* crate::b::Y */\nfn f() {}",
            ),
            ("b.rs", "use crate::a::f;"),
        ]);
        assert!(imports(&g, "a.rs").is_empty());
        assert!(import_cycles(&g).is_empty());
    }

    #[test]
    fn a_facade_is_followed_and_a_hub_closes_a_circle() {
        let g = graph(&[
            ("lib.rs", "mod p; mod q;"),
            // p/ is a facade: its children import each other through it.
            (
                "p/mod.rs",
                "mod one; mod two; pub use one::A; pub use two::B;",
            ),
            ("p/one.rs", "use super::B; pub struct A;"),
            ("p/two.rs", "pub struct B;"),
            // q/mod.rs defines what its child imports, and calls the child.
            (
                "q/mod.rs",
                "mod child; pub struct Hub; fn run() { child::work() }",
            ),
            (
                "q/child.rs",
                "use super::Hub; pub fn work() { let _ = crate::p::two::C; }",
            ),
        ]);
        assert_eq!(imports(&g, "p/mod.rs"), ["p/one.rs", "p/two.rs"]);
        assert_eq!(imports(&g, "p/one.rs"), ["p/two.rs"], "through the facade");
        assert!(imports(&g, "p/two.rs").is_empty());
        assert_eq!(imports(&g, "q/mod.rs"), ["q/child.rs"]);
        assert_eq!(imports(&g, "q/child.rs"), ["p/two.rs", "q/mod.rs"]);
        assert_eq!(
            import_cycles(&g),
            ["q/child.rs -[super::Hub]-> q/mod.rs -[child::work]-> q/child.rs"]
        );
    }

    #[test]
    fn each_circle_is_named_once_without_the_files_around_it() {
        let g = graph(&[
            ("lib.rs", "mod a; mod b; mod c; mod d; mod e; mod f;"),
            ("a.rs", "use crate::b::B; pub struct A;"),
            ("b.rs", "use crate::c::C; pub struct B;"),
            (
                "c.rs",
                "use crate::a::A; use crate::b::B; use crate::f::F; pub struct C;",
            ),
            ("d.rs", "use crate::a::A; use crate::e::E; pub struct D;"),
            ("e.rs", "use crate::d::D; pub struct E;"),
            ("f.rs", "pub struct F;"),
        ]);
        assert_eq!(
            import_cycles(&g),
            [
                "a.rs -[crate::b::B]-> b.rs -[crate::c::C]-> c.rs -[crate::a::A]-> a.rs",
                "d.rs -[crate::e::E]-> e.rs -[crate::d::D]-> d.rs",
            ]
        );
    }

    #[test]
    fn a_circle_in_a_source_tree_is_an_error_that_names_it() {
        let dir = std::env::temp_dir().join(format!("vitals-import-graph-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("lib.rs"), "mod a; mod sub;").unwrap();
        std::fs::write(dir.join("a.rs"), "use crate::sub::b::B; pub struct A;").unwrap();
        std::fs::write(dir.join("sub/mod.rs"), "pub(crate) mod b;").unwrap();
        std::fs::write(dir.join("sub/b.rs"), "pub struct B(crate::a::A);").unwrap();
        let result = no_import_cycle(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let error = result.expect_err("a.rs and sub/b.rs import each other");
        assert!(
            error.ends_with(":\na.rs -[crate::sub::b::B]-> sub/b.rs -[crate::a::A]-> a.rs"),
            "{error}"
        );
    }
}
