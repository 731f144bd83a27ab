#!/usr/bin/env bash
# Makes sure a ClickHouse server answers on SPENDGATE_CLICKHOUSE_ADDR (default
# 127.0.0.1:9000). If none does and the address is on this machine, it installs
# Debian's clickhouse-server (when missing) and starts one whose data, logs and
# config live under .data/clickhouse/ of the project, listening on loopback only.
# Safe to run again: a server that already answers is left alone.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
addr=${SPENDGATE_CLICKHOUSE_ADDR:-127.0.0.1:9000}
host=${addr%:*}
port=${addr##*:}
dir="$root/.data/clickhouse"

reachable() {
	if command -v clickhouse-client >/dev/null 2>&1; then
		clickhouse-client --host "$host" --port "$port" --query 'SELECT 1' >/dev/null 2>&1
	else
		timeout 1 bash -c ">/dev/tcp/$host/$port" 2>/dev/null
	fi
}

if reachable; then
	echo "clickhouse: reachable at $addr"
	exit 0
fi

case "$host" in
127.*|localhost|::1) ;;
*)
	echo "clickhouse: nothing answers at $addr, and it is not on this machine to start one" >&2
	exit 1
	;;
esac

if ! command -v clickhouse-server >/dev/null 2>&1; then
	echo "clickhouse: installing Debian's clickhouse-server and clickhouse-client"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
fi

mkdir -p "$dir"/{data,tmp,user_files,format_schemas,log}
# A copy of the packaged config with every path moved under $dir, our port,
# loopback only, and the HTTP and interserver ports moved out of the way.
sed -e "s#/var/lib/clickhouse/tmp/#$dir/tmp/#g" \
	-e "s#/var/lib/clickhouse/user_files/#$dir/user_files/#g" \
	-e "s#/var/lib/clickhouse/format_schemas/#$dir/format_schemas/#g" \
	-e "s#/var/lib/clickhouse/#$dir/data/#g" \
	-e "s#/var/log/clickhouse-server/#$dir/log/#g" \
	-e "s#<tcp_port>9000</tcp_port>#<tcp_port>$port</tcp_port><listen_host>127.0.0.1</listen_host>#" \
	-e "s#<http_port>8123</http_port>#<http_port>$((port + 1123))</http_port>#" \
	-e "s#<interserver_http_port>9009</interserver_http_port>#<interserver_http_port>$((port + 9))</interserver_http_port>#" \
	/etc/clickhouse-server/config.xml >"$dir/config.xml"
cp /etc/clickhouse-server/users.xml "$dir/users.xml"

echo "clickhouse: starting a server for $addr (data in $dir)"
nohup clickhouse-server --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 &
echo $! >"$dir/pid"

for _ in $(seq 1 120); do
	if reachable; then
		echo "clickhouse: ready at $addr"
		exit 0
	fi
	if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
		echo "clickhouse: the server exited; its log:" >&2
		tail -n 30 "$dir/log/stdout.log" "$dir/log/clickhouse-server.err.log" >&2 2>/dev/null || true
		exit 1
	fi
	sleep 0.5
done
echo "clickhouse: no answer at $addr after 60s; see $dir/log/" >&2
exit 1
