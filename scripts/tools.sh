#!/usr/bin/env bash
# Makes sure the tools the deployment tests need are installed: Debian's
# `prometheus` (the server and promtool: rule checks, rule unit tests and the
# real scrape test) and `docker-compose` (validates compose.yaml). Each is
# installed with apt-get only when missing; `apt-get update` runs only when
# something has to be installed. Safe to run again.
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)

if [ ${#missing[@]} -eq 0 ]; then
	echo "tools: prometheus, promtool and docker-compose are installed"
	exit 0
fi

echo "tools: installing Debian's ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# No recommends: prometheus would bring node-exporter and friends.
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "tools: installed ${missing[*]}"
