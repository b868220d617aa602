#!/usr/bin/env bash
# Lints deploy/Dockerfile offline with dockerfilelint, pinned by
# deploy/package.json and deploy/package-lock.json. Needs node and npm;
# installs the pinned version into deploy/node_modules on first use.
#
#   deploy/lint-dockerfile.sh            # from anywhere
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if [[ ! -x node_modules/.bin/dockerfilelint ]]; then
	npm ci --no-audit --no-fund --loglevel=error
fi
# The path must exist: given a missing file, dockerfilelint lints the
# argument itself as Dockerfile text.
[[ -f Dockerfile ]] || { echo "lint-dockerfile: deploy/Dockerfile not found" >&2; exit 1; }
# Exit status: the number of issues (0 = clean). The rules file is
# deploy/.dockerfilelintrc.
exec npx --no-install dockerfilelint Dockerfile
