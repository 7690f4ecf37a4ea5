#!/usr/bin/env bash
# run.sh: the PMQ-style queue on 127.0.0.1 -- a private MariaDB, a Regroup
# coordinator, a producer and consumers -- for people and for the tests.
#
#   ./run.sh demo    start everything, show progress, add a consumer, freeze
#                    one mid-batch past its session timeout (SIGUSR1, then
#                    SIGCONT once a new owner claimed its partition) and see
#                    the fence refuse its commit, stop one, drain, print the
#                    audit, stop everything (about 50 s)
#   ./run.sh start   start MariaDB, regroup serve, a producer and 3 consumers
#   ./run.sh stop    stop everything started here
#   ./run.sh audit   audit the group's consumption from the database
#   ./run.sh bench [FLAGS]  start MariaDB and regroup serve, run pmq bench
#                    with FLAGS (both modes unless --mode is given), stop them
#
# Environment: PMQ_STATE (logs, pids, data; default /tmp/pmq-demo),
# PMQ_DB_PORT (3307), PMQ_REGROUP (127.0.0.1:7070), PMQ_RATE (200 msg/s).
# Needs Go and MariaDB (apt-get install -y mariadb-server); the system's
# MariaDB service is not used.
set -euo pipefail
cd "$(dirname "$0")"
STATE=${PMQ_STATE:-/tmp/pmq-demo}
DB_PORT=${PMQ_DB_PORT:-3307}
REGROUP=${PMQ_REGROUP:-127.0.0.1:7070}
RATE=${PMQ_RATE:-200}
DSN="root@tcp(127.0.0.1:$DB_PORT)/pmq"
BIN=$PWD/bin
GROUP=demo
TOPIC=orders
SESSION=3s

say() { printf '\n== %s\n' "$*"; }

build() {
  mkdir -p "$BIN"
  go build -o "$BIN/pmq" .
  (cd ../.. && go build -o "$BIN/regroup" ./cmd/regroup)
}

# spawn NAME CMD...: start CMD in the background, log to $STATE/NAME.log,
# remember its pid in $STATE/NAME.pid.
spawn() {
  local name=$1
  shift
  "$@" >>"$STATE/$name.log" 2>&1 &
  echo $! >"$STATE/$name.pid"
}

# signal SIG NAME: send SIG to the process started as NAME.
signal() { kill "-$1" "$(cat "$STATE/$2.pid")"; }

# halt NAME: SIGTERM the process started as NAME and wait until it is gone.
halt() {
  local f="$STATE/$1.pid" pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  rm -f "$f"
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "$1 (pid $pid) ignored SIGTERM for 30 s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

# wait_claim P TOKEN: wait (at most 60 s) until a consumer logs a claim of
# partition P with a token above TOKEN: a newer owner has fenced the old one.
wait_claim() {
  for _ in $(seq 1 600); do
    grep -h "partition $1: claimed" "$STATE"/c*.log 2>/dev/null |
      awk -v t="$2" '$NF + 0 > t + 0 { found = 1 } END { exit !found }' && return 0
    sleep 0.1
  done
  echo "timed out waiting for a consumer to claim partition $1 with a token above $2" >&2
  return 1
}

# wait_log NAME TEXT: wait (at most 60 s) until NAME's log contains TEXT.
wait_log() {
  for _ in $(seq 1 600); do
    grep -q "$2" "$STATE/$1.log" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $STATE/$1.log" >&2
  return 1
}

start_infra() {
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || {
    echo "MariaDB is not installed: apt-get install -y mariadb-server" >&2
    exit 1
  }
  # Say which address is taken rather than fail later in a log: a
  # coordinator from the main README may run on 7070 already.
  for hp in "127.0.0.1:$DB_PORT PMQ_DB_PORT" "$REGROUP PMQ_REGROUP"; do
    set -- $hp
    if (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; then
      echo "$1 is in use (by another coordinator or database?): pick another with $2=..." >&2
      exit 1
    fi
  done
  mkdir -p "$STATE"
  rm -f "$STATE"/*.log
  build
  say "MariaDB on 127.0.0.1:$DB_PORT (data in $STATE/db)"
  spawn mariadb "$BIN/pmq" mariadb --dir "$STATE/db" --port "$DB_PORT"
  wait_log mariadb "MariaDB ready"
  say "regroup serve on $REGROUP (groups in memory)"
  spawn regroup "$BIN/regroup" serve --store memory --listen "$REGROUP" --metrics-addr "" \
    --min-session-timeout 1s --initial-rebalance-delay 1s
  wait_log regroup "serving"
}

consumer() {
  spawn "$1" "$BIN/pmq" consume --dsn "$DSN" --endpoints "$REGROUP" --group "$GROUP" --topic "$TOPIC" \
    --name "$1" --session-timeout "$SESSION" --status-every 2s "${@:2}"
}

start() {
  start_infra
  "$BIN/pmq" setup --dsn "$DSN" --topic "$TOPIC" --partitions 8 --endpoints "$REGROUP"
  say "a producer ($RATE msg/s of 1 KB) and consumers c1, c2, c3 (logs in $STATE)"
  spawn producer "$BIN/pmq" produce --dsn "$DSN" --topic "$TOPIC" --rate "$RATE"
  consumer c1
  consumer c2 --work 10ms # a slow handler: a batch in hand takes a while
  consumer c3
  for c in c1 c2 c3; do wait_log $c "assigned partition"; done
}

stop() {
  for f in "$STATE"/c*.pid; do [ -e "$f" ] && halt "$(basename "$f" .pid)"; done
  halt producer
  halt regroup
  halt mariadb
}

audit() { "$BIN/pmq" audit --dsn "$DSN" --group "$GROUP" --topic "$TOPIC"; }

# show SECONDS: print the consumers' status lines for a while.
show() {
  sleep "$1"
  for f in "$STATE"/c*.log; do grep -h "owns\|refused by the fence" "$f" | tail -1; done
}

demo() {
  rm -rf "${STATE:?}/db" # a fresh database; nothing else of $STATE is removed
  trap stop EXIT
  start
  show 4
  say "c4 joins: with cooperative-sticky only the partitions it takes pause"
  consumer c4
  wait_log c4 "assigned partition"
  show 4
  say "c2 freezes with a batch in hand (SIGUSR1: it stops itself with SIGSTOP, as a long GC pause would)"
  signal USR1 c2
  wait_log c2 "frozen with a batch"
  local frozen partition token
  frozen=$(grep -h "frozen with a batch" "$STATE/c2.log" | tail -1)
  echo "$frozen"
  partition=$(sed -n 's/.*partition \([0-9]*\): frozen.*/\1/p' <<<"$frozen")
  token=${frozen##* }
  say "c2 stays frozen past its $SESSION session: partition $partition moves, and its new owner claims it (fencing token above $token)"
  wait_claim "$partition" "$token"
  grep -h "partition $partition: claimed" "$STATE"/c*.log | tail -1
  say "c2 continues (SIGCONT): it commits the batch it held, and the fence refuses it"
  signal CONT c2
  wait_log c2 "partition $partition: commit refused by the fence"
  grep -h "refused by the fence\|lost partition" "$STATE/c2.log" | tail -5
  show 3
  say "c1 leaves gracefully (SIGTERM: revoke, commit, leave)"
  halt c1
  show 3
  say "producer stops; the group drains"
  halt producer
  sleep 5
  say "audit (from the database alone; the refused commits are c2's)"
  audit
}

bench() {
  trap stop EXIT
  start_infra
  if [[ " $* " == *" --mode "* ]]; then
    "$BIN/pmq" bench --dsn "$DSN" --endpoints "$REGROUP" "$@"
    return
  fi
  say "throughput (pmq bench --mode throughput)"
  "$BIN/pmq" bench --dsn "$DSN" --endpoints "$REGROUP" --mode throughput "$@"
  say "pauses (pmq bench --mode pauses)"
  "$BIN/pmq" bench --dsn "$DSN" --endpoints "$REGROUP" --mode pauses "$@"
}

case "${1:-}" in
  demo) demo ;;
  start) start ;;
  stop) stop ;;
  audit) audit ;;
  bench) shift; bench "$@" ;;
  *) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 2 ;;
esac
