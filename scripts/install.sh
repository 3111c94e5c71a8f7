#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Installs vmnet-broker from a release on macOS 26 or newer:
#
#   curl -fsSL https://github.com/vmnet-broker/vmnet-broker/releases/latest/download/install.sh | sudo bash
#
# Downloads the release tarball (the latest release unless --version),
# checks it against its published SHA-256, installs the command, its manual
# pages and shell completions under PREFIX, then runs
# `vmnet-broker install`, which sets up the launchd service.
#
# Usage: install.sh [--version X.Y.Z] [--tarball FILE] [--prefix DIR] [--dry-run]
#
#   --version  the release to install (default: the latest)
#   --tarball  install from this local tarball instead of downloading; its
#              checksum file FILE.sha256 must be beside it
#   --prefix   where the command goes, PREFIX/bin (default: /usr/local)
#   --dry-run  check and unpack, then print what would be done, changing
#              nothing (works on any system, without root)
#
# Environment: VMNET_BROKER_RELEASES, the base URL of the releases
# (default: https://github.com/vmnet-broker/vmnet-broker/releases).
set -euo pipefail

# Everything is inside main, called on the last line: when this script is
# piped into bash, nothing runs before the whole script has arrived.
main() {
releases=${VMNET_BROKER_RELEASES:-https://github.com/vmnet-broker/vmnet-broker/releases}
# The tarball made by release.yml: a signed universal (arm64 + x86_64) binary.
label="universal-apple-darwin"
version=""
tarball=""
prefix="/usr/local"
dry_run=0

say() { printf 'vmnet-broker installer: %s\n' "$*"; }
die() { printf 'vmnet-broker installer: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '13,20p' "$0" 2>/dev/null | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --version) version="${2:?--version needs a value}"; shift 2 ;;
        --tarball) tarball="${2:?--tarball needs a file}"; shift 2 ;;
        --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help) usage 0 ;;
        *) printf 'vmnet-broker installer: unknown argument %s\n' "$1" >&2; usage 2 ;;
    esac
done

version=${version#v}
if [[ -n "$version" && ! "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+([.+-][0-9A-Za-z.-]+)?$ ]]; then
    die "--version $version is not a version number like 0.1.0"
fi
[[ "$prefix" == /* ]] || die "--prefix must be an absolute path"

# --- The system: macOS 26 or newer (vmnet's network API starts there).
os=$(uname -s)
macos_ok=0
if [[ "$os" == Darwin ]]; then
    product=$(sw_vers -productVersion 2>/dev/null || echo 0)
    if [[ "${product%%.*}" =~ ^[0-9]+$ ]] && (( ${product%%.*} >= 26 )); then
        macos_ok=1
    else
        why="this is macOS $product"
    fi
else
    why="this is $os"
fi
if (( ! macos_ok )); then
    if (( dry_run )); then
        say "note: vmnet-broker needs macOS 26 or newer and $why; a real run would stop here"
    else
        die "vmnet-broker needs macOS 26 or newer (it uses the vmnet network API of macOS 26), and $why. Nothing was changed."
    fi
fi
if (( ! dry_run )) && [[ $(id -u) -ne 0 ]]; then
    die "installing the system service needs root: run this with sudo (or try --dry-run first)"
fi

command -v tar >/dev/null || die "tar not found"
sha256() {
    if command -v shasum >/dev/null; then shasum -a 256 "$1" | cut -d' ' -f1
    elif command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
    else die "neither shasum nor sha256sum found"
    fi
}

work=$(mktemp -d "${TMPDIR:-/tmp}/vmnet-broker-install.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- The tarball and its checksum.
if [[ -n "$tarball" ]]; then
    [[ -f "$tarball" ]] || die "$tarball is not a file"
    [[ -f "$tarball.sha256" ]] || die "$tarball.sha256 not found: the checksum file must be beside the tarball"
    cp "$tarball" "$work/"
    cp "$tarball.sha256" "$work/"
    name=$(basename "$tarball")
else
    command -v curl >/dev/null || die "curl not found"
    fetch() { curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 "$@"; }
    if [[ -z "$version" ]]; then
        # The latest release's page redirects to .../tag/vX.Y.Z.
        latest=$(fetch --output /dev/null --write-out '%{url_effective}' "$releases/latest") ||
            die "cannot reach $releases/latest to find the latest version"
        version=${latest##*/v}
        [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || die "cannot tell the latest version from $latest"
    fi
    name="vmnet-broker-$version-$label.tar.gz"
    say "downloading $name"
    fetch --output "$work/$name" "$releases/download/v$version/$name" ||
        die "cannot download $releases/download/v$version/$name"
    fetch --output "$work/$name.sha256" "$releases/download/v$version/$name.sha256" ||
        die "cannot download the checksum $name.sha256"
fi
[[ "$name" =~ ^vmnet-broker-[0-9A-Za-z._+-]+\.tar\.gz$ ]] || die "$name is not a vmnet-broker release tarball name"

expected=$(awk 'NR == 1 { print $1 }' "$work/$name.sha256")
[[ "$expected" =~ ^[0-9a-f]{64}$ ]] || die "$name.sha256 does not hold a SHA-256"
actual=$(sha256 "$work/$name")
if [[ "$actual" != "$expected" ]]; then
    die "checksum mismatch for $name: expected $expected, got $actual. The download is damaged or not the release; nothing was installed."
fi
say "sha256 OK: $actual"

# --- Unpack: every entry must lie inside the one top directory.
top=${name%.tar.gz}
while IFS= read -r entry; do
    case "$entry" in
        "$top"/*|"$top") ;;
        *) die "unexpected entry in $name: $entry" ;;
    esac
    case "/$entry/" in
        */../*) die "unexpected entry in $name: $entry" ;;
    esac
done < <(tar -tzf "$work/$name")
mkdir "$work/unpacked"
tar -xzf "$work/$name" -C "$work/unpacked" --no-same-owner
src="$work/unpacked/$top"
[[ -f "$src/vmnet-broker" && ! -L "$src/vmnet-broker" ]] || die "$name has no vmnet-broker binary"
chmod 755 "$src/vmnet-broker"

# --- What goes where. In a dry run each command is printed, not run.
run() {
    if (( dry_run )); then
        printf '  would run:'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@" || die "failed: $*"
    fi
}
if (( dry_run )); then
    say "dry run: nothing will be changed"
fi
run install -d -m 755 "$prefix/bin" "$prefix/share/man/man1"
run install -m 755 "$src/vmnet-broker" "$prefix/bin/vmnet-broker"
for page in "$src"/man/man1/*.1; do
    [[ -f "$page" ]] && run install -m 644 "$page" "$prefix/share/man/man1/$(basename "$page")"
done
completion_dirs=(
    "vmnet-broker.bash:share/bash-completion/completions:vmnet-broker"
    "_vmnet-broker:share/zsh/site-functions:_vmnet-broker"
    "vmnet-broker.fish:share/fish/vendor_completions.d:vmnet-broker.fish"
)
for spec in "${completion_dirs[@]}"; do
    IFS=: read -r file dir dest <<<"$spec"
    if [[ -f "$src/completions/$file" ]]; then
        run install -d -m 755 "$prefix/$dir"
        run install -m 644 "$src/completions/$file" "$prefix/$dir/$dest"
    fi
done

if (( dry_run )); then
    printf '  would run: %q install\n' "$prefix/bin/vmnet-broker"
    if "$src/vmnet-broker" --version >/dev/null 2>&1; then
        say "dry run: what \`vmnet-broker install\` would do (its own --dry-run):"
        "$src/vmnet-broker" install --dry-run </dev/null
    else
        say "dry run: the binary in $name does not run on this system; not showing its install plan"
    fi
    say "dry run: nothing was changed"
    exit 0
fi

say "installed $("$prefix/bin/vmnet-broker" --version) in $prefix/bin"
say "setting up the launchd service: $prefix/bin/vmnet-broker install"
"$prefix/bin/vmnet-broker" install </dev/null
say "done. Check it with: vmnet-broker status"
}

main "$@"
