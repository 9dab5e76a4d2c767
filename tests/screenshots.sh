#!/usr/bin/env bash
# Regenerates docs/screenshots: every portal page at 360, 390 and 1280 px in Thai and English, taken
# by tests/test_portal_layout.py (headless Chromium; Thai and Chinese need Debian's fonts-thai-tlwg
# and fonts-noto-cjk, which .ci/run installs). One command: tests/screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rm -f docs/screenshots/*.png
CREDITD_SCREENSHOTS=docs/screenshots PYTHONPATH="$PWD" timeout 600 python3 -m pytest -q tests/test_portal_layout.py
ls docs/screenshots/*.png | wc -l
