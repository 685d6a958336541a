#!/usr/bin/env bash
# Re-vendors the web UI's npm libraries into vendor/, reproducibly: the
# versions come from package-lock.json (npm ci checks each tarball's
# integrity), and the files are copied as published, with two edits only:
# the one bare import (preact/hooks -> "preact") becomes the relative path
# the browser can load, and source-map comments are dropped (the maps are
# not embedded). Running it twice gives the same bytes; the collector
# embeds vendor/ at build time, so nothing runs on a user's machine.
#
#   crates/vitals-collector/ui/vendor.sh           # after changing package.json: npm install first
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error --ignore-scripts
mkdir -p vendor
strip_map() { sed -e '/^\/\/# sourceMappingURL=/d' -e 's|//# sourceMappingURL=[^ ]*$||'; }
strip_map <node_modules/preact/dist/preact.module.js >vendor/preact.js
strip_map <node_modules/preact/hooks/dist/hooks.module.js \
    | sed -e 's|from"preact"|from"./preact.js"|g' >vendor/hooks.js
strip_map <node_modules/htm/dist/htm.module.js >vendor/htm.js
strip_map <node_modules/uplot/dist/uPlot.esm.js >vendor/uplot.js
cp node_modules/uplot/dist/uPlot.min.css vendor/uplot.css
for pkg in preact htm uplot; do
    version=$(node -p "require('./node_modules/$pkg/package.json').version")
    { echo "$pkg $version (npm), licence:"; echo; cat "node_modules/$pkg/LICENSE"; } >"vendor/LICENSE-$pkg.txt"
done
if grep -lE "(import|export)[ {][^;\"']*from *[\"'][^./\"']" vendor/*.js; then
    echo "vendor.sh: a vendored module still imports a bare name (above)" >&2
    exit 1
fi
