//! The documentation names only what exists: every repository path in
//! backticks or in a link, every `cargo … -p CRATE`, and every
//! `--example`, `--bench`, `--bin` and `--test` target in `README.md`,
//! `BENCHMARKS.md` and `docs/*.md` must be in the tree, and every link to a
//! heading (`ARCHITECTURE.md#wire-format-contract`) must find it. Files
//! move; this fails when the documents are left behind.
//!
//! `docs/benchmarks-history.md` is left out: it is the lab notebook of past
//! benchmark sessions, and its paths are the ones of the tree it measured.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where repository paths start; a backticked word starting so is a path.
/// The last four are never right at the top of the repository: they catch
/// a crate-relative path (`examples/quickstart.rs`) written where a reader
/// needs the repository-relative one.
const PREFIXES: &[&str] = &[
    "crates/",
    "docs/",
    "scripts/",
    ".ci/",
    "examples/",
    "src/",
    "benches/",
    "tests/",
];

/// Endings of a backticked word that names a file even without a prefix.
const FILE_ENDINGS: &[&str] = &[".rs", ".md", ".toml", ".sh", ".py", ".js", ".json"];

/// Whether a backticked word is a repository path to check.
fn is_repo_path(word: &str) -> bool {
    if word.starts_with('/') || word.contains("://") || placeholder(word) {
        return false;
    }
    PREFIXES.iter().any(|p| word.starts_with(p))
        || (word.contains('/') && FILE_ENDINGS.iter().any(|e| word.ends_with(e)))
}

/// Documents whose paths are historical records, not instructions.
const HISTORICAL: &[&str] = &["docs/benchmarks-history.md"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The workspace's packages: name → directory.
fn packages(root: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let crates = std::fs::read_dir(root.join("crates")).expect("crates/ is readable");
    for entry in crates {
        let dir = entry.expect("crates/ entry").path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        if let Some(name) = package_name(&manifest) {
            out.insert(name, dir);
        }
    }
    out
}

/// The `name` of a manifest's `[package]` section.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(value) = line.strip_prefix("name") {
                let value = value.trim_start().strip_prefix('=')?.trim();
                return Some(value.trim_matches('"').to_owned());
            }
        }
    }
    None
}

/// The documents checked: (repository-relative name, text).
fn documents(root: &Path) -> Vec<(String, String)> {
    let mut names = vec!["README.md".to_owned(), "BENCHMARKS.md".to_owned()];
    let docs = std::fs::read_dir(root.join("docs")).expect("docs/ is readable");
    let mut in_docs: Vec<String> = docs
        .map(|e| {
            e.expect("docs/ entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .filter(|n| !HISTORICAL.contains(&n.as_str()))
        .collect();
    in_docs.sort();
    names.extend(in_docs);
    names
        .into_iter()
        .map(|n| {
            let text = std::fs::read_to_string(root.join(&n))
                .unwrap_or_else(|e| panic!("cannot read {n}: {e}"));
            (n, text)
        })
        .collect()
}

/// The text outside fenced code blocks, with each fence line blanked.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The lines inside fenced code blocks (the complement of [`prose`]).
fn fenced(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            inside = !inside;
        } else if inside {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Inline code spans of markdown prose (a run of N backticks up to the
/// next run of exactly N), with line breaks inside a span read as spaces.
fn code_spans(prose: &str) -> Vec<String> {
    let chars: Vec<char> = prose.chars().collect();
    let run = |at: usize| chars[at..].iter().take_while(|&&c| c == '`').count();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            i += 1;
            continue;
        }
        let open = run(i);
        let start = i + open;
        let mut j = start;
        let mut end = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let n = run(j);
                if n == open {
                    end = Some(j);
                    break;
                }
                j += n;
            } else {
                j += 1;
            }
        }
        match end {
            Some(e) => {
                let span: String = chars[start..e].iter().collect();
                spans.push(span.replace('\n', " ").trim().to_owned());
                i = e + open;
            }
            None => i = start,
        }
    }
    spans
}

/// Targets of inline links, `[text](target)`.
fn link_targets(prose: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = prose;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].trim().to_owned());
            rest = &rest[end..];
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> Vec<String> {
    prose(markdown)
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| slug(l.trim_start_matches('#')))
        .collect()
}

/// A word that stands for a value rather than naming one (`NAME`,
/// `crates/{a,b}`, `$DIR/x`).
fn placeholder(word: &str) -> bool {
    word.contains(['{', '}', '*', '<', '>', '…', '$'])
        || (word.chars().any(|c| c.is_ascii_uppercase())
            && word
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()))
}

/// Lines with `\` continuations joined, so a command split over lines is
/// read as one.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Where a target of `kind` named `name` would be in the package at `dir`.
fn target_exists(dir: &Path, package: &str, kind: &str, name: &str) -> bool {
    let folder = match kind {
        "--example" => "examples",
        "--bench" => "benches",
        "--test" => "tests",
        _ => "src/bin",
    };
    let file = dir.join(folder).join(format!("{name}.rs"));
    let nested = dir.join(folder).join(name).join("main.rs");
    if file.is_file() || nested.is_file() {
        return true;
    }
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
    let declared = manifest.contains(&format!("name = \"{name}\""));
    match kind {
        "--bin" => declared || (package == name && dir.join("src/main.rs").is_file()),
        _ => declared && manifest.contains(&format!("[[{}]]", &kind[2..])),
    }
}

/// Everything `doc` names that the tree at `root` does not have, and how
/// many names were checked.
fn problems(
    root: &Path,
    packages: &BTreeMap<String, PathBuf>,
    doc: &str,
    text: &str,
    all_docs: &[(String, String)],
) -> (Vec<String>, usize) {
    let mut found = Vec::new();
    let mut checked = 0;
    let doc_dir = Path::new(doc).parent().unwrap_or(Path::new(""));
    let prose = prose(text);

    for span in code_spans(&prose) {
        for word in span.split_whitespace() {
            let word = word.trim_end_matches([',', ';', ':', '.', ')']);
            if !is_repo_path(word) {
                continue;
            }
            checked += 1;
            if !root.join(word).exists() {
                found.push(format!("{doc}: `{word}` does not exist"));
            }
        }
    }

    for target in link_targets(&prose) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (file, anchor) = match target.split_once('#') {
            Some((f, a)) => (f, Some(a)),
            None => (target.as_str(), None),
        };
        let rel = if file.is_empty() {
            PathBuf::from(doc)
        } else {
            doc_dir.join(file)
        };
        checked += 1;
        let path = root.join(&rel);
        if !path.exists() {
            found.push(format!(
                "{doc}: link ({target}) points at {} which does not exist",
                rel.display()
            ));
            continue;
        }
        if let Some(anchor) = anchor {
            let name = normalize(&rel);
            let heading_text = all_docs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.clone())
                .or_else(|| std::fs::read_to_string(&path).ok())
                .unwrap_or_default();
            if !anchors(&heading_text).iter().any(|a| a == anchor) {
                found.push(format!(
                    "{doc}: link ({target}): {name} has no heading #{anchor}"
                ));
            }
        }
    }

    // Each command is read alone: an inline code span, or a line of a
    // fenced block (with its continuations).
    let mut commands = code_spans(&prose);
    commands.extend(logical_lines(&fenced(text)));
    for line in commands {
        let words: Vec<&str> = line
            .split_whitespace()
            .map(|w| {
                w.trim_matches(['`', '(', ')', ',', ';', '[', ']'])
                    .trim_end_matches(['.', ':'])
                    .trim_end_matches('`')
            })
            .take_while(|w| *w != "--")
            .collect();
        let is_cargo = words.contains(&"cargo");
        let mut named: Vec<&str> = Vec::new();
        for pair in words.windows(2) {
            if is_cargo && matches!(pair[0], "-p" | "--package") && !placeholder(pair[1]) {
                checked += 1;
                if packages.contains_key(pair[1]) {
                    if !named.contains(&pair[1]) {
                        named.push(pair[1]);
                    }
                } else {
                    found.push(format!(
                        "{doc}: `-p {}` names no workspace package",
                        pair[1]
                    ));
                }
            }
        }
        for pair in words.windows(2) {
            let kind = pair[0];
            let name = pair[1];
            let cargo_only = matches!(kind, "--bench" | "--bin" | "--test");
            if !matches!(kind, "--example" | "--bench" | "--bin" | "--test")
                || (cargo_only && !is_cargo)
                || name.is_empty()
                || name.starts_with('-')
                || placeholder(name)
            {
                continue;
            }
            checked += 1;
            let candidates: Vec<(&String, &PathBuf)> = if named.is_empty() {
                packages.iter().collect()
            } else {
                packages
                    .iter()
                    .filter(|(n, _)| named.contains(&n.as_str()))
                    .collect()
            };
            if !candidates
                .iter()
                .any(|(pkg, dir)| target_exists(dir, pkg, kind, name))
            {
                let place = if named.is_empty() {
                    "any workspace package".to_owned()
                } else {
                    named.join(", ")
                };
                found.push(format!("{doc}: `{kind} {name}` is not a target of {place}"));
            }
        }
    }
    (found, checked)
}

/// `docs/../BENCHMARKS.md` → `BENCHMARKS.md`.
fn normalize(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::CurDir => {}
            other => parts.push(other.as_os_str().to_string_lossy().into_owned()),
        }
    }
    parts.join("/")
}

#[test]
fn every_path_and_command_in_the_docs_exists() {
    let root = repo_root();
    let packages = packages(&root);
    let docs = documents(&root);
    assert!(docs.len() >= 5, "README, BENCHMARKS and docs/: {docs:?}");
    let mut all = Vec::new();
    let mut checked = 0;
    for (name, text) in &docs {
        let (found, n) = problems(&root, &packages, name, text, &docs);
        all.extend(found);
        checked += n;
    }
    assert!(
        all.is_empty(),
        "the docs name what the tree does not have:\n{}",
        all.join("\n")
    );
    // The extraction itself must find something, or this test checks nothing.
    assert!(
        checked >= 50,
        "only {checked} paths and commands found in the docs"
    );
}

#[test]
fn wrong_paths_and_commands_are_caught() {
    let root = repo_root();
    let packages = packages(&root);
    let text = "\
See `crates/vitals/examples/quickstart.rs` and `crates/vitals/examples/no_such.rs`.\n\
Run `cargo run -p vitals-server --example demo_server` or\n\
`cargo run -p vitals-server --example quickstart` (wrong crate),\n\
`cargo run -p vitals-nope -- demo --example ignored`, `--example missing_everywhere`,\n\
`cargo bench -p vitals-bench --bench render`, `cargo bench -p vitals-bench --bench nope`.\n\
[ok](ARCHITECTURE.md#wire-format-contract) [bad](ARCHITECTURE.md#no-such-heading)\n\
[gone](nowhere.md) `scripts/tset` `examples/quickstart.rs` `vitals/src/lib.rs`\n\
```sh\n\
cargo run -p vitals-server \\\n\
    --example not_there\n\
```\n";
    let docs = documents(&root);
    let (found, _) = problems(&root, &packages, "docs/sample.md", text, &docs);
    let expect = [
        "`crates/vitals/examples/no_such.rs` does not exist",
        "`--example quickstart` is not a target of vitals-server",
        "`-p vitals-nope` names no workspace package",
        "`--example missing_everywhere` is not a target of any workspace package",
        "`--bench nope` is not a target of vitals-bench",
        "has no heading #no-such-heading",
        "nowhere.md which does not exist",
        "`scripts/tset` does not exist",
        "`examples/quickstart.rs` does not exist",
        "`vitals/src/lib.rs` does not exist",
        "`--example not_there` is not a target of vitals-server",
    ];
    for e in expect {
        assert!(
            found.iter().any(|f| f.contains(e)),
            "not caught: {e}\nfound:\n{}",
            found.join("\n")
        );
    }
    assert_eq!(
        found.len(),
        expect.len(),
        "unexpected findings:\n{}",
        found.join("\n")
    );
}
