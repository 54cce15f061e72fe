#!/usr/bin/env bash
# Install raftkafka into ./.venv, start `raftkafka dev`, create a topic, produce and consume a few records, stop.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e .
export PATH="$PWD/.venv/bin:$PATH"

data_dir=$(mktemp -d -t raftkafka-quickstart.XXXXXX)
port=${RAFTKAFKA_QUICKSTART_PORT:-9092}
export RAFTKAFKA_BOOTSTRAP="127.0.0.1:$port"
raftkafka dev --data-dir "$data_dir" --listen "127.0.0.1:$port" --log-level info 2>"$data_dir.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data_dir" "$data_dir.log"' EXIT

for _ in $(seq 100); do
  raftkafka topics list >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { cat "$data_dir.log"; exit 1; }
  sleep 0.1
done

echo "== raftkafka dev is listening on 127.0.0.1:$port (data in $data_dir)"
raftkafka topics create greetings --partitions 3 --replication-factor 1
raftkafka topics describe greetings
printf 'alice:hello\nbob:hi there\ncarol:good morning\n' | raftkafka produce greetings --key-separator : --acks all
echo "== consumed:"
raftkafka consume greetings --from-beginning --max-messages 3 --print-key
echo "== the same records through consumer group 'demo', which commits its offsets:"
raftkafka consume greetings --group demo --from-beginning --max-messages 3
raftkafka groups describe demo
