# calibration.sh — the reference spec (examples/reference.json: 5 epochs of
# Fashion-MNIST, 784-512-256-32-256-512-784, linear warm-up over 10 epochs) must reach
# a test ELBO within 1 nat of an independent PyTorch implementation's -247.5 nats per
# image (one z sample, beta = 1, all 10,000 test images).
. tests/e2e/lib.sh
not_under_tsan "a numerical check of \`vaed train\`; the trainer's threads run under TSan in test_train (1, 2 and 3 threads) and in every daemon script"
e2e_init
if ! "$VAED" train examples/reference.json --quiet >"$T/out.json" 2>"$T/err.txt"; then
    fail "vaed train failed: $(cat "$T/err.txt")"
    finish; exit 1
fi
elbo=$(jq .test.elbo "$T/out.json")
echo "reference spec: test ELBO $elbo nats (PyTorch reference -247.5), $(jq .samples_per_sec "$T/out.json") samples/s"
check "test ELBO $elbo within 1 nat of -247.5" awk -v e="$elbo" 'BEGIN { exit !(e >= -248.5 && e <= -246.5) }'
check "10,000 test images" [ "$(jq .test.n "$T/out.json")" = 10000 ]
finish
