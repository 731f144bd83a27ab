#!/usr/bin/env bash
# Publish one cost event to spendgate with the `nats` CLI
# (https://github.com/nats-io/natscli), e.g. from a cron job or a deploy script.
#
#   ./publish.sh SERVICE OPERATION COST_USD [UNITS UNIT [KEY=VALUE...]]
#   ./publish.sh openai chat_completion 0.0125 1250 tokens business_id=b-42 model=gpt-4o
#
# The CLI's own settings choose the server: NATS_URL (default
# nats://127.0.0.1:4222), NATS_CREDS, NATS_USER, NATS_PASSWORD, or a context
# selected with `nats context select`.
# EVENT_ID sets the event_id (default: a new UUID); publishing the same id
# again within nats.duplicate_window is dropped by JetStream (Nats-Msg-Id).
# The CLI waits for JetStream's acknowledgement (--jetstream) and exits
# non-zero if the event was not stored.
#
# The single line it runs is, in essence:
#   nats pub --jetstream -H "Nats-Msg-Id:$id" "costs.events.$service" "$json"
set -euo pipefail

usage() {
	echo "usage: $0 SERVICE OPERATION COST_USD [UNITS UNIT [KEY=VALUE...]]" >&2
	exit 2
}
[ $# -ge 3 ] || usage
service=$1 operation=$2 cost=$3
shift 3
units="" unit=""
if [ $# -ge 2 ]; then
	units=$1 unit=$2
	shift 2
fi

name='^[a-z0-9][a-z0-9_.-]{0,63}$'
[[ $service =~ $name ]] || { echo "bad service: $service" >&2; exit 2; }
[[ $operation =~ $name ]] || { echo "bad operation: $operation" >&2; exit 2; }
# A decimal string, at most 9 fractional digits: never a float.
[[ $cost =~ ^[0-9]{1,9}(\.[0-9]{1,9})?$ ]] || { echo "bad cost: $cost (like 0.0125)" >&2; exit 2; }
[[ -z $units || $units =~ ^[0-9]+$ ]] || { echo "bad units: $units" >&2; exit 2; }

# JSON string escaping for the values we interpolate.
json_string() {
	local s=${1//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\t'/\\t}
	s=${s//$'\n'/\\n}
	s=${s//$'\r'/\\r}
	printf '"%s"' "$s"
}

id=${EVENT_ID:-$(cat /proc/sys/kernel/random/uuid 2>/dev/null || uuidgen)}
ts=$(date -u +%Y-%m-%dT%H:%M:%SZ)

json="{\"event_id\":$(json_string "$id"),\"ts\":\"$ts\",\"service\":\"$service\",\"operation\":\"$operation\",\"cost_usd\":\"$cost\""
[ -z "$units" ] || json+=",\"units\":$units"
[ -z "$unit" ] || json+=",\"unit\":$(json_string "$unit")"
if [ $# -gt 0 ]; then
	attrs=""
	for kv in "$@"; do
		[[ $kv == *=* ]] || { echo "bad attribute: $kv (KEY=VALUE)" >&2; exit 2; }
		[[ ! $kv =~ [[:cntrl:]] ]] || { echo "bad attribute: $kv (no control characters)" >&2; exit 2; }
		attrs+="${attrs:+,}$(json_string "${kv%%=*}"):$(json_string "${kv#*=}")"
	done
	json+=",\"attributes\":{$attrs}"
fi
json+="}"

# The CLI reads NATS_URL itself (or its selected --context).
exec nats pub --jetstream -H "Nats-Msg-Id:$id" "costs.events.$service" "$json"
