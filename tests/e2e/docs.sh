# docs.sh — the documentation keeps its promises about itself:
#   - README.md is the front door: at most 250 lines, and it gives `make run` and `make test`;
#   - every relative link in README.md and docs/*.md leads to a file that exists (anchors
#     are not checked);
#   - every test that docs/guarantees.md names exists: `x.sh` as tests/e2e/x.sh, `test_x`
#     as tests/unit/test_x.c or as a function in one of them.
# It reads the tree only.
. tests/e2e/lib.sh
n=$(wc -l <README.md)
check "README.md has at most 250 lines ($n)" [ "$n" -le 250 ]
check "README.md gives make run" grep -q 'make run' README.md
check "README.md gives make test" grep -q 'make test' README.md
for f in README.md docs/*.md; do
    dir=$(dirname "$f")
    for link in $(grep -o '](\([^)#]*\)' "$f" | sed 's/^](//' | grep -v '^[a-z]*://' | grep -v '^$'); do
        [ -e "$dir/$link" ] || fail "$f links to $link, which does not exist"
        ok
    done
done
# a body sent with curl's -d goes as a form, which the daemon refuses (415): every curl
# line of the docs that sends a body says it is JSON (--json, or a Content-Type on that
# line or the one before)
bad=$(awk 'FNR == 1 { prev = "" }
           /(^|[ \t])-d[ \t]/ && $0 !~ /Content-Type/ && prev !~ /Content-Type/ { print FILENAME ":" FNR ": " $0 }
           { prev = $0 }' README.md docs/*.md)
check "every curl body in the docs is sent as JSON${bad:+: $bad}" [ -z "$bad" ]
for t in $(grep -o '`[a-z_0-9]*\.sh`' docs/guarantees.md | tr -d '`' | sort -u); do
    [ -f "tests/e2e/$t" ] || fail "docs/guarantees.md names $t, not in tests/e2e/"
    ok
done
for t in $(grep -o '`test_[a-z_0-9]*`' docs/guarantees.md | tr -d '`' | sort -u); do
    [ -f "tests/unit/$t.c" ] || grep -q "^static [a-z].* $t(" tests/unit/*.c ||
        fail "docs/guarantees.md names $t: neither tests/unit/$t.c nor a test function"
    ok
done
finish
