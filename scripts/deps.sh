#!/usr/bin/env bash
# Installs the Debian packages spdlab needs when they are missing.
# As root it runs apt-get; otherwise it says what to run.
set -euo pipefail
missing=()
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		SUDO=sudo
	else
		echo "deps: missing Debian packages: ${missing[*]}" >&2
		echo "deps: run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! ${SUDO:-} apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/spdlab-apt.log 2>&1; then
	${SUDO:-} apt-get update >>/tmp/spdlab-apt.log 2>&1 || true
	if ! ${SUDO:-} apt-get install -y --no-install-recommends "${missing[@]}" >>/tmp/spdlab-apt.log 2>&1; then
		tail -20 /tmp/spdlab-apt.log >&2
		echo "deps: apt-get could not install ${missing[*]} (log: /tmp/spdlab-apt.log)." >&2
		echo "deps: check the machine reaches Debian's package mirror, then run make again." >&2
		exit 1
	fi
fi
echo "deps: installed ${missing[*]}"
