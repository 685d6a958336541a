//! The files of the web UI, embedded at build time from
//! `crates/vitals-collector/ui/`: one table, so a file is served exactly
//! when it is listed here (the test below fails on a file left out, or on
//! an import of a file not served).

/// One embedded file of the UI, served at `/ui/<name>`.
pub(crate) struct Asset {
    /// The path under `ui/`, as the page asks for it (`views/services.js`).
    pub(crate) name: &'static str,
    /// Its `Content-Type`.
    pub(crate) content_type: &'static str,
    /// Its text.
    pub(crate) text: &'static str,
}

/// An [`Asset`] from its path under `ui/` and its content type.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            text: include_str!(concat!("../../ui/", $name)),
        }
    };
}

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// The page at `/`.
pub(crate) const INDEX_HTML: &str = include_str!("../../ui/index.html");

/// Every file the page loads. The frame (`app.js` and the modules beside
/// it), one module per page under `views/` (their registry is
/// `views/index.js`), and the pinned npm libraries under `vendor/` (copied
/// there by `ui/vendor.sh` from `ui/package-lock.json`).
pub(crate) const ASSETS: &[Asset] = &[
    asset!("app.css", CSS),
    asset!("favicon.svg", SVG),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("live.js", JS),
    asset!("format.js", JS),
    asset!("html.js", JS),
    asset!("router.js", JS),
    asset!("charts.js", JS),
    asset!("table.js", JS),
    asset!("widgets.js", JS),
    asset!("views/index.js", JS),
    asset!("views/services.js", JS),
    asset!("views/service.js", JS),
    asset!("views/service-charts.js", JS),
    asset!("views/callmap.js", JS),
    asset!("views/journey.js", JS),
    asset!("views/alerts.js", JS),
    asset!("vendor/preact.js", JS),
    asset!("vendor/hooks.js", JS),
    asset!("vendor/htm.js", JS),
    asset!("vendor/uplot.js", JS),
    asset!("vendor/uplot.css", CSS),
];

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
mod tests {
    use super::{ASSETS, INDEX_HTML, JS};
    use std::path::{Path, PathBuf};

    fn ui_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("ui")
    }

    /// Files of `ui/` that are not served: the page itself (at `/`), the
    /// vendoring tools and the libraries' licences.
    fn not_served(name: &str) -> bool {
        name.rsplit('/')
            .next()
            .is_some_and(|base| base.starts_with('.'))
            || name == "index.html"
            || name == "package.json"
            || name == "package-lock.json"
            || name == "vendor.sh"
            || name.starts_with("node_modules")
            || name.ends_with(".txt")
    }

    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{prefix}{}", entry.file_name().into_string().unwrap());
            if entry.file_type().unwrap().is_dir() {
                if name != "node_modules" {
                    walk(&entry.path(), &format!("{name}/"), out);
                }
            } else {
                out.push(name);
            }
        }
    }

    /// Where `target` (as written in `from`) points, relative to `ui/`.
    fn resolve(from: &str, target: &str) -> String {
        let mut parts: Vec<&str> = from.split('/').collect();
        parts.pop();
        for piece in target.split('/') {
            match piece {
                "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        parts.join("/")
    }

    /// A file added to `ui/` but not to `ASSETS` would be a 404 the page
    /// only meets in a browser: every file is served, and every module a
    /// script imports (statically, dynamically or through the page
    /// registry) and every file the page links is one of them.
    #[test]
    fn every_file_is_served_and_every_import_is_a_file() {
        let served: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        let mut files = Vec::new();
        walk(&ui_dir(), "", &mut files);
        for name in &files {
            if !not_served(name) {
                assert!(served.contains(&name.as_str()), "{name} is not served");
            }
        }
        for a in ASSETS {
            assert!(
                files.iter().any(|f| f == a.name),
                "{} is not a file",
                a.name
            );
        }
        let mut checked = 0;
        for a in ASSETS.iter().filter(|a| a.content_type == JS) {
            for needle in ["from '", "from \"", "from\"", "import('", "module: '"] {
                for rest in a.text.split(needle).skip(1) {
                    let target = rest.split(['\'', '"']).next().unwrap();
                    if target.contains(char::is_whitespace) {
                        continue; // prose in a comment ("from" band edge), not an import
                    }
                    assert!(
                        target.starts_with("./") || target.starts_with("../"),
                        "{} imports {target}: a bare name the browser cannot load",
                        a.name
                    );
                    let resolved = resolve(a.name, target);
                    assert!(
                        served.contains(&resolved.as_str()),
                        "{} loads {target} ({resolved}), not served",
                        a.name
                    );
                    checked += 1;
                }
            }
        }
        for needle in ["href=\"", "src=\""] {
            for rest in INDEX_HTML.split(needle).skip(1) {
                let target = rest.split('"').next().unwrap();
                let file = target
                    .strip_prefix("ui/")
                    .unwrap_or_else(|| panic!("index.html links {target}, not a file under ui/"));
                assert!(
                    served.contains(&file),
                    "index.html links {target}, not served"
                );
                checked += 1;
            }
        }
        assert!(checked > 20, "the check found only {checked} imports");
    }

    /// The UI's own scripts never write markup from strings: data is
    /// rendered as text by preact, so a hostile name cannot become HTML.
    /// (The vendored libraries are checked by their own projects.)
    #[test]
    fn own_scripts_write_no_markup() {
        for a in ASSETS.iter().filter(|a| !a.name.starts_with("vendor/")) {
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "dangerouslySetInnerHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!a.text.contains(banned), "{} uses {banned}", a.name);
            }
        }
    }
}
