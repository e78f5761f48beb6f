#!/bin/bash
# Redis alone: what a heartbeat's last-seen bookkeeping costs at 10,000 and at
# 1,000,000 computers, for the product's design and for the alternatives that
# were weighed against it (docs/benchmarks.md, "index designs").
#
# Two redis-servers run side by side, as the private one runs (AOF, fsync
# always, no automatic rewrite), on Unix sockets in a temporary directory.
# Each is filled once with N computers: a meta entry (a 64-byte value, as a
# computer's msgpack meta is), a member of the last-seen sorted set and, for
# slot-sets, a second meta entry and a member of one slot set. Then, round
# after round, each design's script is driven by redis-benchmark: 2
# connections (the two license workers), each call one batch of 43
# heartbeats of random computers (the batch the full stack sends under
# load). The order of the two sizes is swapped every round.
#
# Designs (one Lua script each, per heartbeat):
#   zset       HGET meta, ZADD last-seen  (the product: ps:meta, ps:active)
#   zset-only  ZADD last-seen             (a worker that knew the license)
#   slot-sets  HGET meta, SMOVE from the computer's old one-second slot set
#              to the current one, HSET meta with the new slot  (an exact
#              index whose sweep takes whole expired slots)
#   list       HGET meta, HSET meta, RPUSH to the current minute's list
#              (append only: the sweep would have to skip the stale entries)
#   meta       HGET meta, HSET meta  (no index at all: the floor)
#
# Prints a line per measurement, then per design: heartbeats/s at each size
# (all rounds summed), the ratio, and Redis's CPU time per heartbeat.
#
# Usage: tools/bench/index-designs.sh [ROUNDS] [CALLS] [DESIGNS...]
#   defaults: 4 rounds, 3000 calls (129,000 heartbeats) per measurement,
#   all five designs.
set -euo pipefail

rounds=${1:-4}
calls=${2:-3000}
shift $(($# > 2 ? 2 : $#))
designs=("$@")
[ ${#designs[@]} -gt 0 ] || designs=(zset zset-only slot-sets list meta)
batch=43
sizes=(10000 1000000)

for tool in redis-server redis-cli redis-benchmark bc; do
  command -v "$tool" >/dev/null || { echo "index-designs: $tool is not installed" >&2; exit 1; }
done

work=$(mktemp -d /tmp/index-designs.XXXXXX)
declare -A pid
cleanup() {
  for n in "${sizes[@]}"; do
    [ -S "$work/$n/sock" ] && redis-cli -s "$work/$n/sock" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

cli() { local n=$1; shift; redis-cli -s "$work/$n/sock" "$@"; }

wait_no_rewrite() {
  while cli "$1" INFO persistence | tr -d '\r' | grep -q '^aof_rewrite_in_progress:1'; do sleep 0.5; done
}

# A 64-byte value that ends in the slot (msgpack uint16 0x0102 = slot 258).
meta_value=$(printf '\x86\xa1l\xd9\x24%s\xa1v\xa51.2.3\xa1p\xa99.9.9.9\xa1s\xcd\x01\x02' \
  "$(printf 'x%.0s' $(seq 36))")

for n in "${sizes[@]}"; do
  mkdir -p "$work/$n"
  redis-server --port 0 --unixsocket "$work/$n/sock" --dir "$work/$n" \
    --appendonly yes --appendfsync always --save '' --auto-aof-rewrite-percentage 0 \
    --daemonize yes --pidfile "$work/$n/pid" --logfile "$work/$n/log" >/dev/null
done
for n in "${sizes[@]}"; do
  for _ in $(seq 50); do [ -S "$work/$n/sock" ] && break; sleep 0.1; done
  pid[$n]=$(cat "$work/$n/pid")
  for ((from = 0; from < n; from += 50000)); do
    to=$((from + 50000 < n ? from + 50000 : n))
    cli "$n" EVAL "
      for i = tonumber(ARGV[1]), tonumber(ARGV[2]) - 1 do
        local name = 'C' .. string.format('%012d', i)
        redis.call('HSET', 'meta', name, ARGV[3])
        redis.call('ZADD', 'active', 1000, name)
        redis.call('HSET', 'smeta', name, ARGV[3])
        redis.call('SADD', 'slot:258', name)
      end
      return 1" 0 "$from" "$to" "$meta_value" >/dev/null
  done
  cli "$n" BGREWRITEAOF >/dev/null
done
for n in "${sizes[@]}"; do wait_no_rewrite "$n"; done

now='local t = redis.call("TIME") local now = t[1] * 1000 + math.floor(t[2] / 1000)'
# Every design but zset-only reads the computer's meta entry; those that
# keep a slot in it rewrite it with the new slot (its last two bytes).
# slot-sets has a meta hash of its own (smeta): the slot there must be the
# set that holds the computer, whatever the other designs wrote in theirs.
read_meta() { echo "local m = redis.call('HGET', '$1', ARGV[i])"; }
write_meta() {
  echo "redis.call('HSET', '$1', ARGV[i], string.sub(m, 1, #m - 2) .. string.char(math.floor(slot / 256), slot % 256))"
}
# A script: the time, then `slot` (ms per slot, or none), then per heartbeat the given lines.
script() {
  local per_slot=$1; shift
  local slot=""
  [ -n "$per_slot" ] && slot="local slot = math.floor(now / $per_slot) % 65536"
  printf '%s\n%s\nfor i = 1, #ARGV do\n' "$now" "$slot"
  printf '  %s\n' "$@"
  printf 'end\n'
}
declare -A body
body[zset]=$(script "" "$(read_meta meta)" "redis.call('ZADD', 'active', now, ARGV[i])")
body[zset-only]=$(script "" "redis.call('ZADD', 'active', now, ARGV[i])")
body[slot-sets]=$(script 1000 "$(read_meta smeta)" \
  "local old = string.byte(m, #m - 1) * 256 + string.byte(m, #m)" \
  "redis.call('SMOVE', 'slot:' .. old, 'slot:' .. slot, ARGV[i])" \
  "$(write_meta smeta)")
body[list]=$(script 60000 "$(read_meta meta)" "$(write_meta meta)" "redis.call('RPUSH', 'seen:' .. slot, ARGV[i])")
body[meta]=$(script 1000 "$(read_meta meta)" "$(write_meta meta)")

names=()
for _ in $(seq $batch); do names+=("C__rand_int__"); done
declare -A sha
for d in "${designs[@]}"; do
  [ -n "${body[$d]:-}" ] || { echo "index-designs: no design '$d'" >&2; exit 1; }
  for n in "${sizes[@]}"; do
    sha[$d.$n]=$(cli "$n" SCRIPT LOAD "${body[$d]} return 1")
    # warm-up, unmeasured
    redis-benchmark -s "$work/$n/sock" -c 2 -n 1000 -r "$n" EVALSHA "${sha[$d.$n]}" 0 "${names[@]}" >/dev/null 2>&1
  done
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A secs ticks
for r in $(seq "$rounds"); do
  order=("${sizes[@]}")
  [ $((r % 2)) = 0 ] && order=(1000000 10000)
  for d in "${designs[@]}"; do
    for n in "${order[@]}"; do
      c0=$(cpu_ticks "${pid[$n]}")
      t0=$(date +%s.%N)
      redis-benchmark -s "$work/$n/sock" -c 2 -n "$calls" -r "$n" \
        EVALSHA "${sha[$d.$n]}" 0 "${names[@]}" >/dev/null 2>&1
      t1=$(date +%s.%N)
      c1=$(cpu_ticks "${pid[$n]}")
      s=$(echo "$t1 - $t0" | bc -l)
      secs[$d.$n]=$(echo "${secs[$d.$n]:-0} + $s" | bc -l)
      ticks[$d.$n]=$(( ${ticks[$d.$n]:-0} + c1 - c0 ))
      printf 'round=%d design=%s computers=%d hb_per_s=%.0f redis_cpu_us_per_hb=%.2f\n' "$r" "$d" "$n" \
        "$(echo "$calls * $batch / $s" | bc -l)" \
        "$(echo "($c1 - $c0) * 1000000 / $(getconf CLK_TCK) / ($calls * $batch)" | bc -l)"
    done
  done
done

hz=$(getconf CLK_TCK)
for d in "${designs[@]}"; do
  total=$(echo "$rounds * $calls * $batch" | bc)
  small=$(echo "$total / ${secs[$d.10000]}" | bc -l)
  large=$(echo "$total / ${secs[$d.1000000]}" | bc -l)
  printf 'design=%s hb_per_s_10k=%.0f hb_per_s_1m=%.0f ratio=%.3f redis_cpu_us_10k=%.2f redis_cpu_us_1m=%.2f\n' \
    "$d" "$small" "$large" "$(echo "$large / $small" | bc -l)" \
    "$(echo "${ticks[$d.10000]} * 1000000 / $hz / $total" | bc -l)" \
    "$(echo "${ticks[$d.1000000]} * 1000000 / $hz / $total" | bc -l)"
done
