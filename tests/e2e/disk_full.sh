# disk_full.sh — the disk fills up under a training job, then space comes back. The
# database lives on a 40 MB tmpfs; mid-run a filler file takes every free byte. The store
# must keep what it could not write and retry, the job must stop stepping and say why
# ("waiting_for_storage"), /healthz must say the store is failing, and once the filler
# is gone the job must go on by itself, with every metric row up to where it is stored
# exactly once, and PRAGMA integrity_check ok. A second, short job is then left to
# finish on a full disk: its final checkpoint waits for space instead of failing it.
# Needs root (mount); anything else fails loudly.
. tests/e2e/lib.sh
e2e_init
mkdir -p "$T/disk"
if ! mount -t tmpfs -o size=40m tmpfs "$T/disk" 2>"$T/mount.err"; then
    fail "cannot mount a tmpfs for the disk-full test (needs root): $(cat "$T/mount.err")"
    finish; exit 1
fi
trap 'umount "$T/disk" 2>/dev/null; e2e_cleanup' EXIT
DB="$T/disk/vaed.db"
# No epoch-end checkpoints: those are all kept (checkpoint.keep_epoch_end), 1.2 MB every
# 20 steps, and on a fast host the job's own database had grown to 32 MB of the 40 by the
# time the filler came and went, so the disk filled again by itself.
start_daemon --threads 1
api POST /v1/jobs '{"name": "diskfull", "dataset": {"limit": 2000},
  "model": {"encoder": [64], "latent": 8, "decoder": [64]},
  "train": {"epochs": 1000, "batch_size": 100, "threads": 1},
  "checkpoint": {"every_steps": 10, "every_seconds": 0, "keep": 2, "at_epoch_end": false}}'
expect_status 201
id=$(jqb .id)
wait_step "$id" 40 120 && ok || fail "job not stepping"
dd if=/dev/zero of="$T/disk/filler" bs=1M >/dev/null 2>&1 || true
echo "disk full: $(df -k "$T/disk" | awk 'NR == 2 { print $4 }') KiB free"
# the job must stop and say why within the store's lag bound (10 s) plus retries
n=0
while :; do
    api GET "/v1/jobs/$id"
    w=$(jqb '.waiting_for_storage // empty')
    [ -n "$w" ] && break
    [ "$(jqb .state)" = completed ] && { fail "job completed while the disk was full"; break; }
    n=$((n + 1)); [ $n -lt 300 ] || { fail "job never reported waiting for storage"; break; }
    sleep 0.1
done
echo "job waits: $w"
s1=$(jqb .step); sleep 1.5; api GET "/v1/jobs/$id"; s2=$(jqb .step)
check "no steps while the store cannot write ($s1 → $s2)" [ "$s1" = "$s2" ]
check "the reason names the disk" sh -c "printf '%s' '$w' | grep -qi 'full\|disk\|space'"
api GET /healthz
check "healthz says the store is failing (HTTP $STATUS)" [ "$STATUS" = 503 ]
rm -f "$T/disk/filler"
wait_step "$id" $((s2 + 100)) 60 && ok || fail "job did not go on once space was back"
api GET "/v1/jobs/$id"
check "no longer waiting" [ "$(jqb '.waiting_for_storage // ""')" = "" ]
api POST "/v1/jobs/$id/cancel"
expect_status 200
last=$(jqb .step)
api GET "/v1/jobs/$id/metrics?fields=beta"
check "every step stored once (0..$((last - 1)))" [ "$(jqb --argjson n "$last" '.step == [range(0; $n)]')" = true ]

# A job that reaches its end while the disk is full: its final checkpoint waits.
api POST /v1/jobs '{"name": "finish-full", "dataset": {"limit": 500},
  "model": {"encoder": [32], "latent": 4, "decoder": [32]},
  "train": {"epochs": 3, "batch_size": 100, "threads": 1},
  "checkpoint": {"every_seconds": 0, "at_epoch_end": false}}'
expect_status 201
id2=$(jqb .id)
wait_step "$id2" 2 60 || true
dd if=/dev/zero of="$T/disk/filler" bs=1M >/dev/null 2>&1 || true
sleep 3
api GET "/v1/jobs/$id2"
check "job 2 not failed while the disk is full (is $(jqb .state): $(jqb .reason))" [ "$(jqb .state)" != failed ]
rm -f "$T/disk/filler"
wait_state "$id2" completed 60 && ok || fail "job 2 did not complete once space was back"
api GET "/v1/jobs/$id2/checkpoints"
check "job 2's final checkpoint is stored" [ "$(jqb '[.checkpoints[] | select(.kind == "final")] | length')" = 1 ]
stop_daemon
check "integrity_check ok" [ "$(sqlite3 "$DB" 'PRAGMA integrity_check')" = ok ]
finish
