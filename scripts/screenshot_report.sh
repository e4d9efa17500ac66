#!/usr/bin/env bash
# Render a fakeseg HTML report in headless Chromium and save a PNG, to check it as a reader would.
#   scripts/screenshot_report.sh REPORT.html OUT.png [WIDTH,HEIGHT]
# Needs Debian's chromium (apt-get install -y chromium). No network is used: the report is
# self-contained and background networking is switched off.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 REPORT.html OUT.png [WIDTH,HEIGHT (default 1400,2400)]" >&2
    exit 2
fi
report=$1
out=$2
size=${3:-1400,2400}
[[ -f "$report" ]] || { echo "$report: no such file" >&2; exit 2; }

browser=""
for candidate in chromium chromium-browser google-chrome; do
    if command -v "$candidate" >/dev/null 2>&1; then browser=$(command -v "$candidate"); break; fi
done
if [[ -z "$browser" ]]; then
    echo "no chromium found; install it: apt-get update && apt-get install -y chromium" >&2
    exit 2
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
url="file://$(realpath "$report")"
mkdir -p "$(dirname "$out")"
out_abs="$(realpath -m "$out")"

"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$profile" --window-size="$size" \
    --screenshot="$out_abs" "$url" >/dev/null 2>&1 || true

if [[ ! -s "$out_abs" ]]; then
    echo "chromium wrote no screenshot to $out_abs" >&2
    exit 1
fi
echo "$out_abs"
