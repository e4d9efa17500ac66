#!/usr/bin/env bash
# Render a fakeseg HTML report in headless Chromium and save PNGs, to check it as a reader would.
#   scripts/screenshot_report.sh REPORT.html OUT.png [WIDTH,HEIGHT]
# Without a size it takes two shots, OUT_1400.png (desktop) and OUT_390.png (phone), each 6000 px
# tall. Needs Debian's chromium (apt-get install -y chromium). No network is used: the report is
# self-contained and background networking is switched off. The automated layout check (no
# horizontal overflow at 1400 and 390 px) is tests/test_report_browser.py.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 REPORT.html OUT.png [WIDTH,HEIGHT (default: 1400,6000 and 390,6000)]" >&2
    exit 2
fi
report=$1
out=$2
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

shoot() {  # shoot WIDTH,HEIGHT FILE
    local target
    target="$(realpath -m "$2")"
    "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --hide-scrollbars --user-data-dir="$profile" --window-size="$1" \
        --virtual-time-budget=5000 --screenshot="$target" "$url" >/dev/null 2>&1 || true
    if [[ ! -s "$target" ]]; then
        echo "chromium wrote no screenshot to $target" >&2
        exit 1
    fi
    echo "$target"
}

if [[ $# -ge 3 ]]; then
    shoot "$3" "$out"
else
    shoot 1400,6000 "${out%.png}_1400.png"
    shoot 390,6000 "${out%.png}_390.png"
fi
