#!/usr/bin/env bash
# The Debian/Ubuntu packages the tests need (Fashion-MNIST's idx files, headless Chromium and its driver):
# installed when missing, as root or through sudo; one clear line when that is not possible.
# Arguments replace the list (`make test-container` asks for the container builder: buildah podman debootstrap).
set -uo pipefail
PACKAGES=(dataset-fashion-mnist chromium chromium-driver)
[ $# -gt 0 ] && PACKAGES=("$@")
if ! command -v dpkg >/dev/null 2>&1; then
    echo "system packages: not a Debian/Ubuntu machine; install ${PACKAGES[*]} (or their equivalents) yourself" >&2
    exit 0
fi
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then SUDO=(); elif sudo -n true 2>/dev/null; then SUDO=(sudo -n); else
    echo "system packages: ${missing[*]} missing and no root or sudo: run 'sudo apt-get install -y ${missing[*]}'" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq || true
"${SUDO[@]}" apt-get install -y -qq "${missing[@]}" || {
    echo "system packages: apt-get could not install ${missing[*]}; the tests that need them will say so" >&2; }
